package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Measurements beyond the delivery check (docs/topics.md "In containers:
// measured"), each off unless its flag is set.
var (
	flood       = flag.Int("flood", 0, "a flooder member (compose service flooder) publishes this many messages as fast as it can from half the run; the others' latency is compared before and during (0: no flooder)")
	memberRate  = flag.Float64("member-rate", 0, "relays' and members' --topic-rate (0: the node's default)")
	memberBurst = flag.Int("member-burst", 0, "relays' and members' --topic-burst (0: the node's default)")
	memberHist  = flag.Int("member-history", 0, "relays' and members' --topic-history (0: the node's default)")
	memberFill  = flag.Duration("member-backfill", 2*time.Minute, "relays' and members' --topic-backfill (0: off); a member cut off for less than it must lose nothing")
	baseline    = flag.Int("baseline", 0, "after the run, each publisher sends this many messages with 'overlay send --stdin' to every other member (the naive fan-out), and the bytes both put on the network are compared (0: no baseline)")
	memTopics   = flag.Int("mem-topics", 0, "after the run, one member follows this many more topics; its and the relays' live heap before and after (0: none)")
)

// limitEnv passes -member-rate, -member-burst, -member-history and
// -member-backfill to the compose file.
func limitEnv() {
	os.Setenv("OTT_TOPIC_BACKFILL", memberFill.String())
	if *memberRate > 0 {
		os.Setenv("OTT_TOPIC_RATE", strconv.FormatFloat(*memberRate, 'f', -1, 64))
	}
	if *memberHist > 0 {
		os.Setenv("OTT_TOPIC_HISTORY", strconv.Itoa(*memberHist))
	}
	if *memberBurst > 0 {
		os.Setenv("OTT_TOPIC_BURST", strconv.Itoa(*memberBurst))
	}
}

// stats is 'overlay topics --stats'.
type stats struct {
	Wire struct {
		RPCs  uint64 `json:"rpcs"`
		Bytes uint64 `json:"bytes"`
	} `json:"wire"`
	Refusals  map[string]uint64  `json:"refusals"`
	Scores    map[string]float64 `json:"scores"`
	HeapAlloc uint64             `json:"heap_alloc"`
}

func nodeStats(ctx context.Context, n *node) (stats, error) {
	var st stats
	out, err := run(ctx, 30*time.Second, "docker", "exec", n.ID, "/overlay", "topics", "--stats")
	if err != nil {
		return st, fmt.Errorf("%s: topics --stats: %w", n.Name, err)
	}
	return st, json.Unmarshal([]byte(out), &st)
}

func peerID(ctx context.Context, n *node) (string, error) {
	out, err := run(ctx, 30*time.Second, "docker", "exec", n.ID, "/overlay", "status", "--json")
	if err != nil {
		return "", err
	}
	var st struct {
		PeerID string `json:"peer_id"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.PeerID == "" {
		return "", fmt.Errorf("%s: status --json: no peer ID (%v)", n.Name, err)
	}
	return st.PeerID, nil
}

// wire reads the bytes every container has sent on its network interface
// (/proc/PID/net/dev of its process, as the host sees it): what the
// network carried, TCP/IP, TLS, WebSocket and yamux included.
type wire struct{ pids map[string]string }

func newWire(ctx context.Context, nodes []*node) (*wire, error) {
	w := &wire{pids: map[string]string{}}
	for _, n := range nodes {
		out, err := run(ctx, 20*time.Second, "docker", "inspect", "--format", "{{.State.Pid}}", n.ID)
		if err != nil {
			return nil, err
		}
		w.pids[n.Name] = strings.TrimSpace(out)
	}
	return w, nil
}

// sent returns the bytes sent by every container but lo, summed.
func (w *wire) sent() (uint64, error) {
	var sum uint64
	for name, pid := range w.pids {
		b, err := os.ReadFile("/proc/" + pid + "/net/dev")
		if err != nil {
			if os.IsNotExist(err) {
				continue // a stopped container
			}
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			iface, rest, ok := strings.Cut(sc.Text(), ":")
			if !ok || strings.TrimSpace(iface) == "lo" {
				continue
			}
			f := strings.Fields(rest)
			if len(f) < 9 {
				continue
			}
			tx, err := strconv.ParseUint(f[8], 10, 64)
			if err == nil {
				sum += tx
			}
		}
	}
	return sum, nil
}

// floodAt feeds the flooder's 'overlay pub --stdin' -flood lines as fast
// as it takes them and returns when it started and ended.
func floodAt(ctx context.Context, f *node) (from, to time.Time, err error) {
	cmd := exec.CommandContext(ctx, "docker", "exec", "-i", f.ID, "/overlay", "pub", "--stdin", topic)
	cmd.WaitDelay = 5 * time.Second
	in, err := cmd.StdinPipe()
	if err != nil {
		return
	}
	if err = cmd.Start(); err != nil {
		return
	}
	from = time.Now()
	w := bufio.NewWriterSize(in, 64<<10)
	pad := strings.Repeat("f", max(0, *size-20))
	for i := 1; i <= *flood; i++ {
		fmt.Fprintf(w, "flood %d %s\n", i, pad)
	}
	w.Flush()
	in.Close()
	err = cmd.Wait() // lines the others refuse still succeed here
	return from, time.Now(), err
}

// floodReport compares the others' latency in the flood with as long a
// window before it, and shows what the relays made of the flooder.
func floodReport(ctx context.Context, fs []*follower, relays []*node, flooder *node, from, to time.Time) {
	var all []sample
	for _, f := range fs {
		f.mu.Lock()
		all = append(all, f.lat...)
		f.mu.Unlock()
	}
	d := to.Sub(from)
	win := func(k string, a, b time.Time) {
		x := durations(all, func(s sample) bool { return !s.sent.Before(a) && s.sent.Before(b) })
		fmt.Printf("%-44s p50 %s, p99 %s (%d deliveries)\n", "latency of the others "+k,
			percentile(x, 0.5).Round(time.Millisecond), percentile(x, 0.99).Round(time.Millisecond), len(x))
	}
	fmt.Printf("flood: %d messages offered in %s (%.0f/s)\n", *flood, d.Round(time.Millisecond), float64(*flood)/d.Seconds())
	win("before the flood", from.Add(-d), from)
	win("during the flood", from, to)
	win("in the 10 s after it", to, to.Add(10*time.Second))
	fid, err := peerID(ctx, flooder)
	if err != nil {
		fmt.Printf("flooder's peer ID: %v\n", err)
		return
	}
	for _, r := range relays {
		st, err := nodeStats(ctx, r)
		if err != nil {
			fmt.Printf("%s: %v\n", r.Name, err)
			continue
		}
		fmt.Printf("%s: refused %v; flooder's score %.0f\n", r.Name, st.Refusals, st.Scores[fid])
	}
}

// baselineRun sends -baseline messages from every publisher to every other
// member with 'overlay send --stdin' (one direct message per follower),
// and returns the deliveries and how long it took.
func baselineRun(ctx context.Context, pubs, ms []*node) (int, time.Duration, error) {
	ids := map[*node]string{}
	for _, m := range ms {
		id, err := peerID(ctx, m)
		if err != nil {
			return 0, 0, err
		}
		ids[m] = id
	}
	pad := strings.Repeat("b", max(0, *size-40))
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(pubs)*len(ms))
	sem := make(chan struct{}, 4)
	n := 0
	for i, p := range pubs {
		for _, m := range ms {
			if m == p {
				continue
			}
			n += *baseline
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				cmd := exec.CommandContext(ctx, "docker", "exec", "-i", p.ID, "/overlay", "send", "--stdin", ids[m])
				var in strings.Builder
				for seq := 1; seq <= *baseline; seq++ {
					fmt.Fprintln(&in, messageText(i, seq, pad))
				}
				cmd.Stdin = strings.NewReader(in.String())
				if out, err := cmd.CombinedOutput(); err != nil {
					errs <- fmt.Errorf("%s -> %s: send --stdin: %w: %s", p.Name, m.Name, err, firstLine(string(out)))
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return n, time.Since(start), err
	}
	return n, time.Since(start), nil
}

// memReport has one member follow -mem-topics more topics ('overlay sub',
// each through docker exec, stopped at the end) and prints its and the
// relays' live heap per topic.
func memReport(ctx context.Context, m *node, relays []*node) {
	heaps := func() []uint64 {
		var h []uint64
		for _, n := range append([]*node{m}, relays...) {
			st, err := nodeStats(ctx, n)
			if err != nil {
				fmt.Printf("%s: %v\n", n.Name, err)
			}
			h = append(h, st.HeapAlloc)
		}
		return h
	}
	before := heaps()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	for i := 1; i <= *memTopics; i++ {
		cmd := exec.CommandContext(sctx, "docker", "exec", m.ID, "/overlay", "sub", fmt.Sprintf("mem-%d", i))
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			fmt.Printf("follow topic %d: %v\n", i, err)
			return
		}
		go func() { _ = cmd.Wait() }()
	}
	// Relays relay a topic once a member announces it follows it.
	if err := eventually(ctx, 60*time.Second, func() error {
		for _, r := range relays {
			out, err := run(ctx, 20*time.Second, "docker", "exec", r.ID, "/overlay", "topics", "--json")
			if err != nil {
				return err
			}
			if c := strings.Count(out, `"mem-`); c < *memTopics {
				return fmt.Errorf("%s relays %d of %d topics", r.Name, c, *memTopics)
			}
		}
		return nil
	}); err != nil {
		fmt.Printf("relays: %v\n", err)
	}
	after := heaps()
	for i, n := range append([]*node{m}, relays...) {
		fmt.Printf("%-44s %d -> %d bytes: %+.0f bytes per topic\n", "heap of "+n.Name+", "+strconv.Itoa(*memTopics)+" more topics followed",
			before[i], after[i], (float64(after[i])-float64(before[i]))/float64(*memTopics))
	}
}
