package main

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

func listNodes(ctx context.Context) ([]*node, error) {
	out, err := run(ctx, 30*time.Second, "docker", "ps", "--filter", "label=com.docker.compose.project="+project,
		"--format", `{{.ID}} {{.Label "com.docker.compose.service"}} {{.Names}}`)
	if err != nil {
		return nil, err
	}
	var nodes []*node
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 {
			nodes = append(nodes, &node{id: f[0], svc: f[1], name: f[2]})
		}
	}
	slices.SortFunc(nodes, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	return nodes, nil
}

func waitHealthy(ctx context.Context, nodes []*node, d time.Duration) error {
	return eventually(ctx, d, func() error {
		for _, n := range nodes {
			out, err := run(ctx, 10*time.Second, "docker", "inspect", "--format", "{{.State.Health.Status}}", n.id)
			if err != nil {
				return err
			}
			if s := strings.TrimSpace(out); s != "healthy" {
				return fmt.Errorf("%s is %s", n.name, s)
			}
		}
		return nil
	})
}

// eventually calls fn every half second until it returns nil, d passes or
// ctx ends, and returns its last error.
func eventually(ctx context.Context, d time.Duration, fn func() error) error {
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

// composeCommand is $COMPOSE, else "docker compose" if it answers, else
// "docker-compose".
func composeCommand() ([]string, error) {
	if v := strings.Fields(os.Getenv("COMPOSE")); len(v) > 0 {
		return v, nil
	}
	ctx := context.Background()
	if _, err := run(ctx, 20*time.Second, "docker", "compose", "version"); err == nil {
		return []string{"docker", "compose"}, nil
	}
	if _, err := run(ctx, 20*time.Second, "docker-compose", "version"); err == nil {
		return []string{"docker-compose"}, nil
	}
	return nil, errors.New("neither `docker compose` nor `docker-compose` answers")
}

// run runs a command with a deadline and returns its standard output; the
// error carries its standard error.
func run(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 2 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		return out.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), ctx.Err())
	}
	if err != nil {
		return out.String(), fmt.Errorf("%w: %s", err, firstLine(errb.String(), out.String()))
	}
	return out.String(), nil
}

func firstLine(texts ...string) string {
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
