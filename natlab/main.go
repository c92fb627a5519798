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
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Addresses. The lab's "internet" is 7.7.0.0/16: manet.IsPublicAddr must
// accept it, or go-libp2p would never treat the routers' mapped addresses as
// public. It exists only on veths between the lab's namespaces: each site
// on its own /24, routed by nl-inet.
const (
	inetPrefix = "/24"
	relayIP    = "7.7.0.1"
	relayTCP   = 4100
	relayWS    = 4101
	relayQUIC2 = 4102 // a second QUIC port, for netcheck (relayListen)
	network    = "natlab"
)

type site struct {
	name   string // "A" or "B"
	rtr    string // router namespace
	peer   string // peer namespace
	cgn    string // carrier-grade NAT namespace, when the scenario has one
	wanIP  string // router's address on the internet
	lanGW  string // router's LAN address
	peerIP string // peer's LAN address
	lanLen string
}

var sites = []site{
	{name: "A", rtr: "nl-rtrA", peer: "nl-peerA", cgn: "nl-cgnA", wanIP: "7.7.1.1", lanGW: "10.10.1.1", peerIP: "10.10.1.2", lanLen: "/24"},
	{name: "B", rtr: "nl-rtrB", peer: "nl-peerB", cgn: "nl-cgnB", wanIP: "7.7.2.1", lanGW: "10.10.2.1", peerIP: "10.10.2.2", lanLen: "/24"},
}

const (
	nsInet  = "nl-inet"
	nsRelay = "nl-relay"
)

func allNamespaces() []string {
	ns := []string{nsInet, nsRelay}
	for _, s := range sites {
		ns = append(ns, s.cgn, s.rtr, s.peer)
	}
	return ns
}

type options struct {
	bin           string
	rows          []scenario
	trials        int
	coneTrials    int
	duration      time.Duration
	faultDuration time.Duration
	faultAfter    time.Duration
	interval      time.Duration
	msgTimeout    time.Duration
	ready         time.Duration
	relayAddrs    string
	logLevel      string
	jsonPath      string
	check         bool
	clean         bool
	measure       bool
	keep          bool
	verbose       bool
	quic          bool // the binary has QUIC: the relay listens on it too
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	layout := flag.String("layout", "all", "rows to run, a comma list of: cone, cone-symmetric, symmetric, udp-drop, ws-only, "+
		"fault:conntrack-flush, fault:wan-down, fault:relay-restart, a matrix cell (drop/reject ...); or layouts, faults, all (layouts and faults), matrix; none (with -clean: only clean up)")
	matrix := flag.String("matrix", "", "also run the matrix: every unordered pair (diagonal included) of these side behaviours, a comma list of: "+
		"drop, reject, open, cgnat, symmetric, udp-block, same-lan; or all. Without -layout, only the matrix")
	flag.StringVar(&o.bin, "bin", "bin/overlay", "overlay binary (build with: CGO_ENABLED=0 go build -o bin/overlay ./cmd/overlay)")
	flag.IntVar(&o.trials, "trials", 1, "trials per row (each builds the lab afresh)")
	flag.IntVar(&o.coneTrials, "cone-trials", 0, "trials of the cone row (0: -trials)")
	flag.DurationVar(&o.duration, "duration", 8*time.Second, "how long peer A sends to peer B in a layout trial")
	flag.DurationVar(&o.faultDuration, "fault-duration", 25*time.Second, "how long peer A sends to peer B in a fault trial")
	flag.DurationVar(&o.faultAfter, "fault-after", 5*time.Second, "inject the fault this long after the first message if the path is not direct by then")
	flag.DurationVar(&o.interval, "interval", 200*time.Millisecond, "time between messages")
	flag.DurationVar(&o.msgTimeout, "msg-timeout", 45*time.Second, "how long a message may wait for its acknowledgement before it counts as lost")
	flag.DurationVar(&o.ready, "ready-timeout", 30*time.Second, "how long to wait for the relay and both reservations")
	flag.StringVar(&o.relayAddrs, "relay-addrs", "all", "relay addresses given to the peers: all (TCP, WebSocket, QUIC) or ws; ws-only peers always get ws")
	flag.StringVar(&o.logLevel, "log-level", "info", "the relay's and peers' --log-level (debug shows failed hole punches); see -keep")
	flag.StringVar(&o.jsonPath, "json", "", "also write the rows, with every trial's details, as JSON to this file")
	flag.BoolVar(&o.check, "check", false, "also fail when a path is not what the row expects (cone and faults: direct in every trial; ws-only: never direct)")
	flag.BoolVar(&o.clean, "clean", false, "first remove the lab's own namespaces (nl-*) and their processes, left over from a killed run")
	flag.BoolVar(&o.measure, "measure", false, "instead of the rows: ping and perf between the peers, relayed (ws-only) and direct (cone)")
	flag.BoolVar(&o.keep, "keep", false, "keep the logs and data directories (the path is printed)")
	flag.BoolVar(&o.verbose, "v", false, "print each step")
	flag.Parse()

	usage := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "natlab: "+format+"\n", a...)
		return 2
	}
	var err error
	layoutSet := false
	flag.Visit(func(f *flag.Flag) { layoutSet = layoutSet || f.Name == "layout" })
	if *matrix != "" && !layoutSet {
		*layout = "none"
	}
	if o.rows, err = parseScenarios(*layout); err != nil {
		return usage("-layout: %v", err)
	}
	if *matrix != "" {
		cells, err := matrixCells(*matrix)
		if err != nil {
			return usage("-matrix: %v", err)
		}
		for _, c := range cells {
			if !slices.ContainsFunc(o.rows, func(r scenario) bool { return r.name == c.name }) {
				o.rows = append(o.rows, c)
			}
		}
		fmt.Fprintf(os.Stderr, "natlab: matrix of %d cells (side A sends, side B receives); behaviours:\n", len(cells))
		for _, b := range behaviours {
			if slices.ContainsFunc(cells, func(c scenario) bool { return slices.Contains(c.sides[:], b.name) }) {
				fmt.Fprintf(os.Stderr, "  %-10s %s\n", b.name, b.what)
			}
		}
	}
	if o.trials < 1 || o.coneTrials < 0 {
		return usage("-trials must be at least 1 and -cone-trials at least 0")
	}
	if o.relayAddrs != "all" && o.relayAddrs != "ws" {
		return usage("-relay-addrs must be all or ws, not %q", o.relayAddrs)
	}
	if o.faultAfter >= o.faultDuration {
		return usage("-fault-after must be shorter than -fault-duration")
	}
	bin, err := filepath.Abs(o.bin)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		return usage("overlay binary: %v (build it with: CGO_ENABLED=0 go build -o bin/overlay ./cmd/overlay)", err)
	}
	o.bin = bin
	if os.Geteuid() != 0 {
		return usage("must run as root (it creates network namespaces)")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := ensureTools(ctx); err != nil {
		return usage("%v", err)
	}
	unlock, err := lockLab(ctx)
	if err != nil {
		return usage("%v", err)
	}
	defer unlock()
	if o.clean {
		err = cleanLeftovers(ctx)
	} else {
		err = checkNoLeftovers(ctx)
	}
	if err != nil {
		return usage("%v", err)
	}
	help, _ := exec.CommandContext(ctx, o.bin, "relay", "--help").CombinedOutput()
	o.quic = strings.Contains(string(help), "quic")

	dir, err := os.MkdirTemp("", "natlab-")
	if err != nil {
		return usage("%v", err)
	}
	if o.keep {
		defer fmt.Fprintf(os.Stderr, "natlab: logs kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if o.measure {
		return runMeasure(ctx, o, dir)
	}
	if len(o.rows) == 0 {
		return 0
	}

	rep := reportJSON{Started: time.Now(), Binary: o.bin, Check: o.check}
	var rows []*row
	for _, sc := range o.rows {
		r := &row{sc: sc}
		rows = append(rows, r)
		n := o.trials
		if sc.name == "cone" && o.coneTrials > 0 {
			n = o.coneTrials
		}
		for i := 1; i <= n && ctx.Err() == nil; i++ {
			tdir := filepath.Join(dir, fmt.Sprintf("%s-%d", strings.NewReplacer(":", "-", "/", "-").Replace(sc.name), i))
			res, err := runTrial(ctx, o, sc, tdir)
			if err != nil {
				if ctx.Err() == nil {
					fmt.Fprintf(os.Stderr, "natlab: %s trial %d/%d FAILED: %v\n", sc.name, i, n, err)
					r.fail(err)
				}
				continue
			}
			fmt.Fprintf(os.Stderr, "natlab: %s trial %d/%d: sent %d, acked %d (rtt p50 %s, max %s), lost %d, delivered %d, dup %d, reordered %d; path %s, B sees A %s (direct flows: %s); %s; log: %d hole-punch, %d warn/error lines\n",
				sc.name, i, n, res.sent, res.acked, res.rttP50.Round(10*time.Microsecond), res.rttMax.Round(time.Millisecond),
				res.lost, res.inbox.delivered, res.inbox.dup, res.inbox.reordered, res.timelineText(), res.endPathBA, orDash(res.directVia), res.punchText(), res.punchLines, res.warnLines)
			if len(res.firstErrors) > 0 {
				var first []string
				for _, e := range res.firstErrors[:min(3, len(res.firstErrors))] {
					first = append(first, firstLine(e, 240))
				}
				fmt.Fprintf(os.Stderr, "natlab: %s trial %d: first send errors: %s\n", sc.name, i, strings.Join(first, "; "))
			}
			r.add(res)
			one := &row{sc: sc}
			one.add(res)
			if len(one.problems(o.check)) > 0 {
				printLogTails(tdir)
			}
		}
	}
	failed := false
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "natlab: interrupted")
		failed = true
	}
	printTable(os.Stdout, rows)
	fmt.Fprintf(os.Stderr, "natlab: %d rows in %s\n", len(rows), time.Since(rep.Started).Round(time.Second))
	for _, r := range rows {
		for _, p := range r.problems(o.check) {
			fmt.Fprintf(os.Stderr, "natlab: FAIL %s: %s\n", r.sc.name, p)
			failed = true
		}
	}
	rep.Finished, rep.Pass = time.Now(), !failed
	if o.jsonPath != "" {
		if err := writeJSON(o.jsonPath, rep, rows); err != nil {
			fmt.Fprintf(os.Stderr, "natlab: -json: %v\n", err)
			failed = true
		}
	}
	if failed {
		return 1
	}
	return 0
}

// ensureTools checks for ip, installing iptables and conntrack with apt-get
// when missing.
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
	for _, t := range missing {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s still not found after apt-get install", t)
		}
	}
	return nil
}

// lockFile serialises natlab runs on the machine: the namespaces have fixed
// names, and -clean must not take a running lab for a leftover one. The
// kernel drops the lock when its holder dies, however it dies.
const lockFile = "/run/natlab.lock"

// lockLab takes the lock, waiting while another natlab holds it.
func lockLab(ctx context.Context) (unlock func(), err error) {
	f, err := os.OpenFile(lockFile, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	for said := false; ; said = true {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", lockFile, err)
		}
		if !said {
			fmt.Fprintf(os.Stderr, "natlab: another natlab run holds %s; waiting for it to end\n", lockFile)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return func() { f.Close() }, nil
}

// leftovers returns the lab's namespace names that exist now.
func leftovers(ctx context.Context) ([]string, error) {
	have, err := listNetns(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range allNamespaces() {
		if slices.Contains(have, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// checkNoLeftovers refuses to start when a namespace with one of the lab's
// names exists (-clean removes them).
func checkNoLeftovers(ctx context.Context) error {
	clash, err := leftovers(ctx)
	if err != nil {
		return err
	}
	if len(clash) > 0 {
		return fmt.Errorf("namespaces %s already exist (left over from a killed run?); run with -clean, or remove them with: ip netns del NAME",
			strings.Join(clash, ", "))
	}
	return nil
}

// cleanLeftovers removes the lab's own namespaces left by a run that was
// killed before it could clean up, after killing the processes inside them
// (overlay nodes that run started).
func cleanLeftovers(ctx context.Context) error {
	names, err := leftovers(ctx)
	if err != nil {
		return err
	}
	l := &lab{}
	for _, ns := range names {
		out, _ := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
		pids := strings.Fields(string(out))
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		fmt.Fprintf(os.Stderr, "natlab: -clean: removing namespace %s left over from an earlier run (%d processes killed)\n", ns, len(pids))
		l.nss = append(l.nss, ns)
	}
	return l.close()
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

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printLogTails prints the last lines of a failed trial's logs, so a CI run
// says what happened without -keep.
func printLogTails(dir string) {
	for _, name := range []string{"peerA.log", "peerB.log", "relay.log"} {
		var lines []string
		for _, l := range readLines(filepath.Join(dir, name)) {
			if !strings.HasPrefix(l, "/") && !strings.HasPrefix(l, "peer ID:") {
				lines = append(lines, "    "+firstLine(l, 300))
			}
		}
		fmt.Fprintf(os.Stderr, "natlab: last lines of %s:\n%s\n", name, strings.Join(lines[max(0, len(lines)-8):], "\n"))
	}
}

// firstLine is the first line of s, cut at n bytes.
func firstLine(s string, n int) string {
	s, _, more := strings.Cut(s, "\n")
	if len(s) > n {
		s, more = s[:n], true
	}
	if more {
		s += " …"
	}
	return s
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
