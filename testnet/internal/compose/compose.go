// Package compose holds what the container checks (testnet/check,
// testnet/revoke, testnet/topics) share to drive a compose project: which
// compose tool to use, running a command with a deadline, listing a
// project's containers and waiting until they are healthy.
//
// Every call is bounded: a command that does not answer within its timeout
// is killed and reported as such.
package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// Command is $COMPOSE, else "docker compose" if it answers, else
// "docker-compose".
func Command() ([]string, error) {
	if v := strings.Fields(os.Getenv("COMPOSE")); len(v) > 0 {
		return v, nil
	}
	ctx := context.Background()
	if _, err := Run(ctx, 20*time.Second, "docker", "compose", "version"); err == nil {
		return []string{"docker", "compose"}, nil
	}
	if _, err := Run(ctx, 20*time.Second, "docker-compose", "version"); err == nil {
		return []string{"docker-compose"}, nil
	}
	return nil, errors.New("neither `docker compose` nor `docker-compose` answers")
}

// Run runs a command with a deadline and returns its standard output; the
// error carries its standard error, or says the command did not answer in
// time, or that ctx ended.
func Run(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, name, args...)
	cmd.WaitDelay = 2 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		return out.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), ctx.Err())
	}
	if cctx.Err() != nil {
		return out.String(), fmt.Errorf("%s %s: no answer within %s", name, strings.Join(args, " "), timeout)
	}
	if err != nil {
		return out.String(), fmt.Errorf("%w: %s", err, FirstLine(errb.String(), out.String()))
	}
	return out.String(), nil
}

// FirstLine returns the first non-empty line of the first non-empty text,
// cut to a table cell's width.
func FirstLine(texts ...string) string {
	for _, t := range texts {
		for _, l := range strings.Split(t, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				if len(l) > 200 {
					l = l[:200] + "..."
				}
				return l
			}
		}
	}
	return "(no output)"
}

// Eventually calls fn every half second until it returns nil, d passes or
// ctx ends, and returns its last error (ctx's when it ended).
func Eventually(ctx context.Context, d time.Duration, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Node is one running container of a compose project.
type Node struct {
	ID, Service, Name string // container ID, compose service, container name
}

// List returns the running containers of a compose project, by name.
func List(ctx context.Context, project string) ([]*Node, error) {
	out, err := Run(ctx, 30*time.Second, "docker", "ps", "--filter", "label=com.docker.compose.project="+project,
		"--format", `{{.ID}} {{.Label "com.docker.compose.service"}} {{.Names}}`)
	if err != nil {
		return nil, err
	}
	var nodes []*Node
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 {
			nodes = append(nodes, &Node{ID: f[0], Service: f[1], Name: f[2]})
		}
	}
	slices.SortFunc(nodes, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })
	return nodes, nil
}

// WaitHealthy waits up to d until docker calls every node healthy (its
// compose healthcheck), and returns the last node that was not.
func WaitHealthy(ctx context.Context, nodes []*Node, d time.Duration) error {
	return Eventually(ctx, d, func() error {
		for _, n := range nodes {
			out, err := Run(ctx, 10*time.Second, "docker", "inspect", "--format", "{{.State.Health.Status}}", n.ID)
			if err != nil {
				return err
			}
			if s := strings.TrimSpace(out); s != "healthy" {
				return fmt.Errorf("%s is %s", n.Name, s)
			}
		}
		return nil
	})
}

// Exec runs the overlay binary (/overlay) in n's container.
func Exec(ctx context.Context, n *Node, timeout time.Duration, args ...string) (string, error) {
	out, err := Run(ctx, timeout, "docker", append([]string{"exec", n.ID, "/overlay"}, args...)...)
	if err != nil {
		return out, fmt.Errorf("%s: overlay %s: %w", n.Name, args[0], err)
	}
	return out, nil
}
