// Command topics checks group messaging (docs/topics.md) in containers: 2
// relays and N members (testnet/topics.yml) that reach each other only
// through the relays (--ws-only, one internal network), every member
// following one topic and several publishing, against issue 26's goals:
// every follower receives every message exactly once, in order per
// publisher; delivery goes on when a relay stops mid-run; a member cut off
// for a while gets, after it heals, what was published meanwhile from its
// peers' backfill store (all of it when the cut is shorter than
// -member-backfill), and what it still lacks is reported missing by its
// node.
//
//	make build && docker build --target testnet -t overlay-topics:local .
//	go run ./testnet/topics [-members 30] [-publishers 4] [-messages 2500] [-rate 25] [-direct 0]
//
// With -direct N, N more members also listen on TCP and are connected to
// each other directly before the run; the publishers are taken among them
// first.
//
// It starts the network (compose project overlay-topics), waits until every
// node is healthy, runs 'overlay sub --json' in every member (docker exec),
// waits until each member's mesh holds both relays, then feeds each
// publisher's 'overlay pub --stdin' at -rate lines a second. Each text
// carries publisher, sequence and the host's clock; a follower's node
// stamps when it got it (the containers share the host's clock). At a
// third of the run relay1 stops; at two thirds one member is disconnected
// from the network for -partition. It prints a table and exits 1 if a check
// fails. The network is removed at the end, on an interrupt too, unless
// -keep.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/overlay-net/overlay/testnet/internal/compose"
)

const (
	topic = "fleet"
)

var (
	project    = flag.String("project", "overlay-topics", "compose project name (its network is PROJECT_lan)")
	members    = flag.Int("members", 30, "members to start")
	publishers = flag.Int("publishers", 4, "members that publish")
	messages   = flag.Int("messages", 2500, "messages per publisher")
	rate       = flag.Float64("rate", 25, "messages a second per publisher")
	size       = flag.Int("size", 200, "bytes per message text")
	stopRelay  = flag.Bool("stop-relay", true, "stop relay1 at a third of the run")
	partition  = flag.Duration("partition", 10*time.Second, "disconnect one member from the network this long at two thirds of the run (0: none)")
	drain      = flag.Duration("drain", 60*time.Second, "how long after the last publish the followers may take")
	keep       = flag.Bool("keep", false, "leave the network running")
	file       = flag.String("f", "testnet/topics.yml", "compose file")
	upWait     = flag.Duration("health-timeout", 3*time.Minute, "how long the nodes may take to be healthy")
	limit      = flag.Duration("timeout", 0, "give up the whole check after this long, then remove the network (0: no bound)")
)

type node = compose.Node

var (
	run        = compose.Run
	eventually = compose.Eventually
	firstLine  = compose.FirstLine
)

func main() {
	flag.Parse()
	cc, err := compose.Command()
	if err != nil {
		fatal(err)
	}
	cc = append(cc, "-p", *project, "-f", *file)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if *limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *limit)
		defer cancel()
	}
	ok := false
	defer func() {
		stop()
		if !*keep {
			if _, err := run(context.Background(), 2*time.Minute, cc[0], append(cc[1:], "down", "-v", "--remove-orphans", "-t", "2")...); err != nil {
				fmt.Fprintf(os.Stderr, "remove the network: %v\n", err)
			}
		}
		if !ok {
			os.Exit(1)
		}
	}()
	limitEnv()
	flooders := 0
	if *flood > 0 {
		flooders = 1
	}
	if _, err := run(ctx, 5*time.Minute, cc[0], append(cc[1:], "up", "-d", "--scale", fmt.Sprintf("member=%d", *members),
		"--scale", fmt.Sprintf("flooder=%d", flooders), "--scale", fmt.Sprintf("dmember=%d", *direct))...); err != nil {
		fail(fmt.Errorf("start the network: %w", err))
		return
	}
	ok = check(ctx)
}

func check(ctx context.Context) bool {
	start := time.Now()
	nodes, err := compose.List(ctx, *project)
	if err != nil {
		return fail(err)
	}
	if err := compose.WaitHealthy(ctx, nodes, *upWait); err != nil {
		return fail(err)
	}
	var ms, dms, relays []*node
	var relay1, flooder *node
	for _, n := range nodes {
		switch n.Service {
		case "member":
			ms = append(ms, n)
		case "dmember":
			dms = append(dms, n)
		case "flooder":
			flooder = n
		case "relay1", "relay2":
			relays = append(relays, n)
			if n.Service == "relay1" {
				relay1 = n
			}
		}
	}
	if *flood > 0 && flooder == nil {
		return fail(fmt.Errorf("-flood: no flooder running"))
	}
	var relayHeap []uint64
	if *memTopics > 0 {
		for _, r := range relays {
			st, err := nodeStats(ctx, r)
			if err != nil {
				return fail(err)
			}
			relayHeap = append(relayHeap, st.HeapAlloc)
		}
	}
	if len(ms) < 1 || len(ms)+len(dms) < *publishers+2 || relay1 == nil {
		return fail(fmt.Errorf("%d members (%d --ws-only) running, want at least %d, one --ws-only, and relay1",
			len(ms)+len(dms), len(ms), *publishers+2))
	}
	fl := ""
	if flooder != nil {
		fl = ", a flooder"
	}
	how := "all --ws-only"
	if len(dms) > 0 {
		how = fmt.Sprintf("%d also connected directly to each other, the others --ws-only", len(dms))
	}
	// Direct members first: the publishers are taken from the front, the
	// member cut off from the back.
	ms = append(dms, ms...)
	fmt.Printf("%d nodes healthy after %s (%d relays, %d members%s, %s)\n",
		len(nodes), time.Since(start).Round(time.Second), len(relays), len(ms), fl, how)
	if len(dms) > 1 {
		if err := connectDirect(ctx, dms); err != nil {
			return fail(err)
		}
		fmt.Printf("%d direct members connected to each other over TCP\n", len(dms))
	}

	fs := make([]*follower, len(ms))
	for i, n := range ms {
		fs[i] = newFollower(n)
		cmd := exec.CommandContext(ctx, "docker", "exec", n.ID, "/overlay", "sub", "--json", topic)
		if err := follow(cmd, fs[i]); err != nil {
			return fail(err)
		}
	}
	// Both relays' meshes hold every member before the run (asking the
	// relays: asking 30 members through docker exec takes a minute).
	if err := eventually(ctx, 90*time.Second, func() error {
		for _, n := range relays {
			if m, err := meshSize(ctx, n); err != nil || m < len(ms) {
				return fmt.Errorf("%s: mesh of %d of %d members (%v)", n.Name, m, len(ms), err)
			}
		}
		return nil
	}); err != nil {
		return fail(fmt.Errorf("meshes: %w", err))
	}
	fmt.Printf("every member follows %q, both relays mesh with every member, %s after start\n", topic, time.Since(start).Round(time.Second))
	if len(dms) > 1 {
		if err := directMeshes(ctx, dms, len(relays)); err != nil {
			return fail(err)
		}
		fmt.Printf("each direct member meshes with the relays and the other direct members\n")
	}
	for i, h := range relayHeap {
		st, err := nodeStats(ctx, relays[i])
		if err == nil {
			fmt.Printf("heap of %s: %d bytes before the members followed, %d after: %+.0f bytes per follower\n",
				relays[i].Name, h, st.HeapAlloc, (float64(st.HeapAlloc)-float64(h))/float64(len(ms)))
		}
	}
	var w *wire
	var idleRate float64 // bytes a second the whole network sends with no messages
	if *baseline > 0 {
		if w, err = newWire(ctx, nodes); err != nil {
			return fail(err)
		}
		a, err := w.sent()
		if err != nil {
			return fail(err)
		}
		t0 := time.Now()
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(10 * time.Second): // a fixed window of idle traffic
		}
		b, _ := w.sent()
		idleRate = float64(b-a) / time.Since(t0).Seconds()
		fmt.Printf("idle: the network sends %.0f bytes/s (heartbeats, pings, gossip)\n", idleRate)
	}
	var wire0 uint64
	if w != nil {
		wire0, _ = w.sent()
	}

	pubs := ms[:*publishers]
	victim := fs[len(fs)-1] // partitioned: not a publisher
	total := *publishers * *messages
	pad := strings.Repeat("x", max(0, *size-40))
	var sent sync.WaitGroup
	progress := make(chan int, 1024)
	pubErrs := make([]error, len(pubs))
	runStart := time.Now()
	for i, p := range pubs {
		sent.Add(1)
		go func() {
			defer sent.Done()
			pubErrs[i] = publish(ctx, p, i, pad, progress)
		}()
	}
	published := 0
	var relayStopped, partFrom, partTo, floodFrom, floodTo time.Time
	var floodErr error
	flooding := false // floodFrom, floodTo and floodErr are the flood's, read after faults.Wait
	done := make(chan struct{})
	go func() { sent.Wait(); close(done) }()
	var faults sync.WaitGroup
loop:
	for {
		select {
		case <-done:
			break loop
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-progress:
			published++
			if *stopRelay && relayStopped.IsZero() && published >= total/3 {
				relayStopped = time.Now()
				faults.Add(1)
				go func() {
					defer faults.Done()
					if _, err := run(ctx, 30*time.Second, "docker", "stop", "-t", "1", relay1.ID); err != nil {
						fmt.Fprintf(os.Stderr, "stop relay1: %v\n", err)
					}
				}()
				fmt.Printf("stopping relay1 after %d of %d messages\n", published, total)
			}
			if *flood > 0 && !flooding && published >= total/2 {
				flooding = true
				faults.Add(1)
				go func() {
					defer faults.Done()
					floodFrom, floodTo, floodErr = floodAt(ctx, flooder)
				}()
				fmt.Printf("flooding from %s after %d messages\n", flooder.Name, published)
			}
			if *partition > 0 && partFrom.IsZero() && published >= 2*total/3 {
				partFrom = time.Now()
				faults.Add(1)
				go func() {
					defer faults.Done()
					partTo = cut(ctx, victim.n, *partition)
				}()
				fmt.Printf("disconnecting %s for %s after %d messages\n", victim.n.Name, *partition, published)
			}
		}
	}
	for len(progress) > 0 {
		<-progress
	}
	lastPub := time.Now()
	faults.Wait()
	for i, err := range pubErrs {
		if err != nil {
			return fail(fmt.Errorf("publisher %d: %w", i, err))
		}
	}
	fmt.Printf("published %d messages in %s\n", total, lastPub.Sub(runStart).Round(time.Millisecond))

	// Drain: until every follower has everything (the cut one: everything
	// delivered or reported missing), or no progress for 15 s, or -drain.
	prev, still := -1, time.Now()
	_ = eventually(ctx, *drain, func() error {
		sum, short := 0, 0
		for _, f := range fs {
			c := f.count()
			sum += c
			if f == victim && !partFrom.IsZero() {
				f.mu.Lock()
				c += f.missedRep
				f.mu.Unlock()
			}
			if c < total {
				short++
			}
		}
		if sum != prev {
			prev, still = sum, time.Now()
		} else if time.Since(still) > 15*time.Second {
			return nil
		}
		if short > 0 {
			return fmt.Errorf("%d followers short", short)
		}
		return nil
	})
	runEnd := time.Now()
	var wire1 uint64
	if w != nil {
		wire1, _ = w.sent()
	}
	ok := report(fs, victim, total, runStart, relayStopped, partFrom, partTo)
	if !partFrom.IsZero() {
		if ti, err := topicInfo(ctx, victim.n); err == nil {
			fmt.Printf("%-44s %d backfilled, %d missed, %d late\n", "the cut-off member's node counted", ti.Backfilled, ti.Missed, ti.Late)
		} else {
			fmt.Printf("the cut-off member's topic counts: %v\n", err)
		}
	}
	if *flood > 0 {
		if floodErr != nil {
			fmt.Printf("flooder's pub --stdin: %v\n", floodErr)
		}
		floodReport(ctx, fs, relays, flooder, floodFrom, floodTo)
	}
	if w != nil {
		deliveries := total * (len(ms) - 1)
		topicBytes := float64(wire1-wire0) - idleRate*runEnd.Sub(runStart).Seconds()
		n, took, err := baselineRun(ctx, pubs, ms)
		b1, _ := w.sent()
		baseBytes := float64(b1-wire1) - idleRate*took.Seconds()
		if err != nil {
			fmt.Printf("baseline: %v\n", err)
		}
		fmt.Printf("%-44s %.0f bytes (%.0f less idle) for %d deliveries: %.0f bytes per delivery\n", "on the wire, topic",
			float64(wire1-wire0), topicBytes, deliveries, topicBytes/float64(deliveries))
		fmt.Printf("%-44s %.0f bytes (%.0f less idle) for %d deliveries in %s: %.0f bytes per delivery\n", "on the wire, one send per follower",
			float64(b1-wire1), baseBytes, n, took.Round(time.Millisecond), baseBytes/float64(n))
	}
	if *memTopics > 0 {
		memReport(ctx, ms[1], relays)
	}
	return ok
}

// publish feeds 'overlay pub --stdin' in p's container with -messages
// lines at -rate, one progress tick a line.
func publish(ctx context.Context, p *node, idx int, pad string, progress chan<- int) error {
	cmd := exec.CommandContext(ctx, "docker", "exec", "-i", p.ID, "/overlay", "pub", "--stdin", topic)
	cmd.WaitDelay = 5 * time.Second
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		return err
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / *rate))
	defer tick.Stop()
	for seq := 1; seq <= *messages; seq++ {
		select {
		case <-ctx.Done():
			in.Close()
			return ctx.Err()
		case <-tick.C:
		}
		if _, err := fmt.Fprintln(in, messageText(idx, seq, pad)); err != nil {
			return fmt.Errorf("%s: write line %d: %w", p.Name, seq, err)
		}
		progress <- 1
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%s: overlay pub --stdin: %w: %s", p.Name, err, firstLine(errb.String()))
	}
	return nil
}

// cut disconnects n from the compose network for d, then reconnects it,
// and returns when it did.
func cut(ctx context.Context, n *node, d time.Duration) time.Time {
	net := *project + "_lan"
	if _, err := run(ctx, 30*time.Second, "docker", "network", "disconnect", net, n.ID); err != nil {
		fmt.Fprintf(os.Stderr, "disconnect %s: %v\n", n.Name, err)
		return time.Now()
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	if _, err := run(context.Background(), 30*time.Second, "docker", "network", "connect", "--alias", "member", net, n.ID); err != nil {
		fmt.Fprintf(os.Stderr, "reconnect %s: %v\n", n.Name, err)
	}
	return time.Now()
}

func meshSize(ctx context.Context, n *node) (int, error) {
	ti, err := topicInfo(ctx, n)
	return len(ti.Mesh), err
}

// nodeTopic is what 'overlay topics --json' says of the topic.
type nodeTopic struct {
	Name       string   `json:"name"`
	Mesh       []string `json:"mesh"`
	Missed     uint64   `json:"missed"`
	Late       uint64   `json:"late"`
	Backfilled uint64   `json:"backfilled"`
}

func topicInfo(ctx context.Context, n *node) (nodeTopic, error) {
	out, err := run(ctx, 20*time.Second, "docker", "exec", n.ID, "/overlay", "topics", "--json")
	if err != nil {
		return nodeTopic{}, err
	}
	var ts []nodeTopic
	if err := json.Unmarshal([]byte(out), &ts); err != nil {
		return nodeTopic{}, fmt.Errorf("topics --json: %w", err)
	}
	for _, t := range ts {
		if t.Name == topic {
			return t, nil
		}
	}
	return nodeTopic{}, errors.New("topic not joined")
}

func fail(err error) bool {
	fmt.Fprintf(os.Stderr, "topics check: %v\n", err)
	return false
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "topics check: %v\n", err)
	os.Exit(1)
}
