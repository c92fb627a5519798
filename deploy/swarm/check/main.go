// Command check deploys the testnet stack (deploy/swarm/stack.yml) on Docker
// Swarm, checks that every private peer replica holds a reservation on both
// relays and that messages pass between replicas on different LANs, scales
// the peers up and checks that the new replicas join too, then removes the
// stack: also when a step fails or it is interrupted. It leaves the swarm
// only if it joined it itself (docker swarm init).
//
//	go run ./deploy/swarm/check             (make swarm-check; the image must exist)
//	go run ./deploy/swarm/check -keep       leave the stack running
//
// It reads the replicas' state with `docker exec TASK /overlay ...`, so it
// sees the tasks of this host: on a multi-host swarm, run it on each.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

const stack = "overlay-swarm"

var (
	file     = flag.String("f", "deploy/swarm/stack.yml", "stack file")
	start    = flag.Int("replicas", 20, "private peer replicas to check first, split over the two LANs")
	scaled   = flag.Int("scale", 30, "private peer replicas to scale to, then check again")
	joinWait = flag.Duration("join-timeout", 3*time.Minute, "how long the replicas may take to reserve on both relays")
	keep     = flag.Bool("keep", false, "leave the stack (and the swarm) as they are at the end")
)

// The relays' test identities (testnet/keys).
var relayIDs = []string{"12D3KooWGZ8GccZ9RTv9kUK6Vomd1qshVswsH2AoHqgfNx97zUPh", "12D3KooWC1pE8HKpVUCYukAY8t7RYH9c534ZPTyBJXDXfPbYrgMy"}

var lans = []string{"peer-a", "peer-b"}

func main() {
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	t0 := time.Now()
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "swarm-check: FAIL after %s: %v\n", time.Since(t0).Round(time.Second), err)
		os.Exit(1)
	}
	fmt.Printf("swarm-check: ok in %s\n", time.Since(t0).Round(time.Second))
}

func run(ctx context.Context) (err error) {
	state, err := docker(ctx, "info", "--format", "{{.Swarm.LocalNodeState}}")
	if err != nil {
		return fmt.Errorf("docker info: %w", err)
	}
	joined := false
	if strings.TrimSpace(state) != "active" {
		if _, err := docker(ctx, "swarm", "init", "--advertise-addr", "127.0.0.1"); err != nil {
			return fmt.Errorf("swarm init: %w", err)
		}
		joined = true
		step("swarm initialized on this node (it will leave it at the end)")
	}
	defer func() {
		if *keep {
			return
		}
		// Cleanup runs on a fresh context: ctx may be what was interrupted.
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if cerr := removeStack(cctx); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if joined {
			if _, cerr := docker(cctx, "swarm", "leave", "--force"); cerr != nil {
				err = errors.Join(err, fmt.Errorf("swarm leave: %w", cerr))
			} else {
				step("left the swarm")
			}
		}
	}()
	_ = removeStack(ctx) // a stack left over from an interrupted run
	if _, err := docker(ctx, "stack", "deploy", "--resolve-image", "never", "-c", *file, stack); err != nil {
		return fmt.Errorf("stack deploy: %w", err)
	}
	step("stack deployed")
	if err := scaleTo(ctx, *start); err != nil {
		return err
	}
	first, err := checkJoined(ctx, *start)
	if err != nil {
		return err
	}
	if err := checkMessages(ctx, first, nil); err != nil {
		return err
	}
	if err := scaleTo(ctx, *scaled); err != nil {
		return err
	}
	all, err := checkJoined(ctx, *scaled)
	if err != nil {
		return err
	}
	return checkMessages(ctx, all, first)
}

func step(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func docker(ctx context.Context, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// removeStack removes the stack and waits until its networks are gone, so
// that a swarm leave or the next deploy does not trip on them.
func removeStack(ctx context.Context) error {
	if _, err := docker(ctx, "stack", "rm", stack); err != nil {
		return err
	}
	return poll(ctx, 90*time.Second, "the stack's networks and containers to go", func() error {
		nets, _ := docker(ctx, "network", "ls", "-q", "--filter", "label=com.docker.stack.namespace="+stack)
		ctrs, _ := docker(ctx, "ps", "-aq", "--filter", "label=com.docker.stack.namespace="+stack)
		if strings.TrimSpace(nets+ctrs) != "" {
			return errors.New("still there")
		}
		return nil
	})
}

// scaleTo sets the peer services to n replicas in all, half on each LAN.
func scaleTo(ctx context.Context, n int) error {
	args := []string{"service", "scale", "--detach"}
	for i, svc := range lans {
		args = append(args, fmt.Sprintf("%s_%s=%d", stack, svc, n/len(lans)+boolInt(i < n%len(lans))))
	}
	if _, err := docker(ctx, args...); err != nil {
		return err
	}
	step("peers scaled to %d", n)
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// replica is one running private peer task.
type replica struct {
	container, lan, peerID string
}

type status struct {
	PeerID       string `json:"peer_id"`
	Reservations []struct {
		Relay string `json:"relay"`
	} `json:"reservations"`
}

// checkJoined waits until n peer tasks run and each holds a reservation on
// both relays, and returns them.
func checkJoined(ctx context.Context, n int) ([]replica, error) {
	t0 := time.Now()
	var got []replica
	var missing []string
	err := poll(ctx, *joinWait, fmt.Sprintf("%d replicas reserved on both relays", n), func() error {
		got, missing = nil, nil
		for _, lan := range lans {
			out, err := docker(ctx, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+stack+"_"+lan, "--filter", "status=running")
			if err != nil {
				return err
			}
			for _, c := range strings.Fields(out) {
				st, err := statusOf(ctx, c)
				if err != nil {
					missing = append(missing, c+": "+err.Error())
					continue
				}
				var held []string
				for _, r := range st.Reservations {
					held = append(held, r.Relay)
				}
				if !containsAll(held, relayIDs) {
					missing = append(missing, fmt.Sprintf("%s (%s): reserved on %d of 2 relays", c, lan, len(held)))
					continue
				}
				got = append(got, replica{container: c, lan: lan, peerID: st.PeerID})
			}
		}
		if len(got) != n || len(missing) > 0 {
			return fmt.Errorf("%d of %d joined; %s", len(got), n, strings.Join(first(missing, 5), "; "))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	step("all %d replicas hold reservations on both relays (%s)", n, time.Since(t0).Round(time.Second))
	return got, nil
}

func statusOf(ctx context.Context, container string) (status, error) {
	var st status
	out, err := docker(ctx, "exec", container, "/overlay", "status", "--json", "--timeout", "5s")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal([]byte(out), &st)
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// checkMessages has every replica not in old send a message to a replica on
// the other LAN, and checks the acknowledgements and the receivers' inboxes.
func checkMessages(ctx context.Context, reps, old []replica) error {
	byLAN := map[string][]replica{}
	for _, r := range reps {
		byLAN[r.lan] = append(byLAN[r.lan], r)
	}
	isOld := map[string]bool{}
	for _, r := range old {
		isOld[r.container] = true
	}
	type pair struct{ from, to replica }
	var pairs []pair
	for i, r := range reps {
		if isOld[r.container] {
			continue
		}
		other := byLAN[lans[0]]
		if r.lan == lans[0] {
			other = byLAN[lans[1]]
		}
		pairs = append(pairs, pair{r, other[i%len(other)]})
	}
	t0 := time.Now()
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			text := fmt.Sprintf("swarm-check from %s to %s", p.from.peerID, p.to.peerID)
			err := sendAndFind(ctx, p.from, p.to, text)
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s (%s) to %s (%s): %w", p.from.container, p.from.lan, p.to.container, p.to.lan, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	step("%d messages between replicas on different LANs acknowledged and found in the inboxes (%s)", len(pairs), time.Since(t0).Round(time.Second))
	return nil
}

func sendAndFind(ctx context.Context, from, to replica, text string) error {
	if _, err := docker(ctx, "exec", from.container, "/overlay", "send", "--timeout", "30s", to.peerID, text); err != nil {
		return err
	}
	out, err := docker(ctx, "exec", to.container, "/overlay", "inbox", "--json")
	if err != nil {
		return err
	}
	var inbox []struct {
		From string `json:"from"`
		Data string `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &inbox); err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	for _, m := range inbox {
		if m.From == from.peerID && m.Data == text {
			return nil
		}
	}
	return errors.New("acknowledged, but not in the receiver's inbox")
}

// poll calls fn until it succeeds or d passes, and returns its last error.
func poll(ctx context.Context, d time.Duration, what string, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s: %w", d, what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}
