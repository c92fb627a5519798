// Command natlab builds a small NAT lab out of Linux network namespaces (an
// "internet" switch, a public relay, two LANs behind NAT routers), runs the
// overlay relay and two private peers in it, sends messages from one peer to
// the other, and reports whether and when the peers found a direct path.
//
// It needs root, iproute2 and iptables. Everything it creates (namespaces,
// the veths inside them, child processes, a temporary directory) is removed
// when it exits, also on errors and Ctrl-C; -keep keeps the logs.
//
// See natlab/README.md.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Addresses. The lab's "internet" is 7.7.0.0/16: manet.IsPublicAddr must
// accept it, or go-libp2p would never treat the routers' mapped addresses as
// public. It exists only on veths between the lab's namespaces.
const (
	inetPrefix = "/16"
	relayIP    = "7.7.0.1"
	relayTCP   = 4100
	relayWS    = 4101
	network    = "natlab"
)

type site struct {
	name   string // "A" or "B"
	rtr    string // router namespace
	peer   string // peer namespace
	wanIP  string // router's address on the internet
	lanGW  string // router's LAN address
	peerIP string // peer's LAN address
	lanLen string
}

var sites = []site{
	{name: "A", rtr: "nl-rtrA", peer: "nl-peerA", wanIP: "7.7.1.1", lanGW: "10.10.1.1", peerIP: "10.10.1.2", lanLen: "/24"},
	{name: "B", rtr: "nl-rtrB", peer: "nl-peerB", wanIP: "7.7.2.1", lanGW: "10.10.2.1", peerIP: "10.10.2.2", lanLen: "/24"},
}

const (
	nsInet  = "nl-inet"
	nsRelay = "nl-relay"
)

func allNamespaces() []string {
	ns := []string{nsInet, nsRelay}
	for _, s := range sites {
		ns = append(ns, s.rtr, s.peer)
	}
	return ns
}

type options struct {
	bin      string
	layouts  []string
	trials   int
	duration time.Duration
	interval time.Duration
	ready    time.Duration
	keep     bool
	verbose  bool
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	layout := flag.String("layout", "both", "NAT layout: cone, symmetric or both")
	flag.StringVar(&o.bin, "bin", "bin/overlay", "overlay binary (build with: CGO_ENABLED=0 go build -o bin/overlay ./cmd/overlay)")
	flag.IntVar(&o.trials, "trials", 1, "trials per layout (each builds the lab afresh)")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "how long peer A sends to peer B in each trial")
	flag.DurationVar(&o.interval, "interval", 200*time.Millisecond, "time between messages")
	flag.DurationVar(&o.ready, "ready-timeout", 30*time.Second, "how long to wait for the relay and both reservations")
	flag.BoolVar(&o.keep, "keep", false, "keep the logs and data directories (the path is printed)")
	flag.BoolVar(&o.verbose, "v", false, "print each step")
	flag.Parse()

	switch *layout {
	case "cone", "symmetric":
		o.layouts = []string{*layout}
	case "both":
		o.layouts = []string{"cone", "symmetric"}
	default:
		fmt.Fprintf(os.Stderr, "natlab: -layout must be cone, symmetric or both, not %q\n", *layout)
		return 2
	}
	if o.trials < 1 {
		fmt.Fprintln(os.Stderr, "natlab: -trials must be at least 1")
		return 2
	}
	bin, err := filepath.Abs(o.bin)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "natlab: overlay binary: %v (build it with: CGO_ENABLED=0 go build -o bin/overlay ./cmd/overlay)\n", err)
		return 2
	}
	o.bin = bin
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "natlab: must run as root (it creates network namespaces)")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := ensureTools(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "natlab: %v\n", err)
		return 2
	}
	if err := checkNoLeftovers(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "natlab: %v\n", err)
		return 2
	}

	dir, err := os.MkdirTemp("", "natlab-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "natlab: %v\n", err)
		return 2
	}
	if o.keep {
		defer fmt.Fprintf(os.Stderr, "natlab: logs kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	var rows []row
	failed := false
	for _, l := range o.layouts {
		r := row{layout: l}
		for t := 1; t <= o.trials; t++ {
			if ctx.Err() != nil {
				break
			}
			tdir := filepath.Join(dir, fmt.Sprintf("%s-%d", l, t))
			res, err := runTrial(ctx, o, l, tdir)
			if err != nil {
				fmt.Fprintf(os.Stderr, "natlab: %s trial %d: %v\n", l, t, err)
				r.errors++
				failed = true
				continue
			}
			fmt.Fprintf(os.Stderr, "natlab: %s trial %d: sent %d, acked %d, lost %d, path %s, direct after %s\n",
				l, t, res.sent, res.acked, res.lost, res.endPath, durOrDash(res.direct, res.directAfter))
			r.add(res)
		}
		rows = append(rows, r)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "natlab: interrupted")
		failed = true
	}
	printTable(rows)
	for _, r := range rows {
		if r.lost > 0 || r.errors > 0 || r.trials == 0 {
			failed = true
		}
	}
	if failed {
		return 1
	}
	return 0
}

// ensureTools checks for ip and iptables, installing iptables and conntrack
// with apt-get when missing. conntrack is not used yet; the planned faults
// (conntrack -F) need it.
func ensureTools(ctx context.Context) error {
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("ip (iproute2) not found")
	}
	var missing []string
	for _, t := range []string{"iptables", "conntrack"} {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	fmt.Fprintf(os.Stderr, "natlab: installing %s\n", strings.Join(missing, ", "))
	out, err := exec.CommandContext(ctx, "apt-get", append([]string{"install", "-y"}, missing...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get install %s: %v\n%s", strings.Join(missing, " "), err, tail(string(out), 10))
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return errors.New("iptables still not found after apt-get install")
	}
	return nil
}

// checkNoLeftovers refuses to start when a namespace with one of the lab's
// names exists: it is not ours to delete.
func checkNoLeftovers(ctx context.Context) error {
	have, err := listNetns(ctx)
	if err != nil {
		return err
	}
	var clash []string
	for _, n := range allNamespaces() {
		if slices.Contains(have, n) {
			clash = append(clash, n)
		}
	}
	if len(clash) > 0 {
		return fmt.Errorf("namespaces %s already exist (left over from a killed run?); remove them with: ip netns del NAME",
			strings.Join(clash, ", "))
	}
	return nil
}

func listNetns(ctx context.Context) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %v", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// trialResult is what one trial measured.
type trialResult struct {
	sent, acked, lost int
	direct            bool
	directAfter       time.Duration // since the first message
	endPath           string
	firstErrors       []string
}

// row aggregates the trials of one layout.
type row struct {
	layout            string
	trials, errors    int
	directN           int
	directAfter       []time.Duration
	sent, acked, lost int
	endPaths          map[string]int
}

func (r *row) add(t trialResult) {
	r.trials++
	r.sent += t.sent
	r.acked += t.acked
	r.lost += t.lost
	if t.direct {
		r.directN++
		r.directAfter = append(r.directAfter, t.directAfter)
	}
	if r.endPaths == nil {
		r.endPaths = map[string]int{}
	}
	r.endPaths[t.endPath]++
}

func printTable(rows []row) {
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYOUT\tTRIALS\tDIRECT\tTO DIRECT P50\tTO DIRECT P95\tSENT\tACKED\tLOST\tPATH AT END")
	for _, r := range rows {
		trials := fmt.Sprint(r.trials)
		if r.errors > 0 {
			trials = fmt.Sprintf("%d (+%d failed)", r.trials, r.errors)
		}
		rate := "-"
		if r.trials > 0 {
			rate = fmt.Sprintf("%d/%d (%.0f%%)", r.directN, r.trials, 100*float64(r.directN)/float64(r.trials))
		}
		p50, p95 := "-", "-"
		if len(r.directAfter) > 0 {
			s := slices.Clone(r.directAfter)
			slices.Sort(s)
			p50 = s[(len(s)-1)*50/100].Round(10 * time.Millisecond).String()
			p95 = s[(len(s)-1)*95/100].Round(10 * time.Millisecond).String()
		}
		var paths []string
		for p, n := range r.endPaths {
			paths = append(paths, fmt.Sprintf("%s %d/%d", p, n, r.trials))
		}
		slices.Sort(paths)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", r.layout, trials, rate, p50, p95,
			r.sent, r.acked, r.lost, orDash(strings.Join(paths, ", ")))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func durOrDash(ok bool, d time.Duration) string {
	if !ok {
		return "-"
	}
	return d.Round(10 * time.Millisecond).String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// readLines returns the non-empty lines of a file, nil if it does not exist.
func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// decodeJSON decodes out into v, naming the command on failure.
func decodeJSON(what string, out []byte, v any) error {
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("%s: bad JSON: %v: %s", what, err, tail(string(out), 3))
	}
	return nil
}
