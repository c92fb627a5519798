// Command check runs end-to-end checks against the running container
// testnet (docker-compose.yml at the repository root) and prints a summary
// table. It exits 1 if any check fails.
//
//	go run ./testnet/check          run the checks (make testnet-check)
//	go run ./testnet/check -wait    wait until every node is healthy (make testnet)
//
// It talks to the nodes only through `docker exec CONTAINER /overlay ...`
// (each node's control API is on its own loopback) and drives the net with
// the compose tool: $COMPOSE if set ("docker compose" or "docker-compose"),
// else whichever answers. Every wait is bounded.
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
	"text/tabwriter"
	"time"
)

const project = "overlay-testnet"

// The nodes of docker-compose.yml.
var (
	relays  = []string{"relay1", "relay2"}
	private = []string{"peer1", "peer2", "peer3"}
	public  = []string{"pub1"}
	members = append(slices.Clone(private), public...) // nodes that hold reservations
	all     = append(slices.Clone(relays), members...)
)

const intruder = "intruder" // the compose service of another network, profile "intruder"

// Bounds of the waits.
var (
	healthWait   = flag.Duration("health-timeout", 2*time.Minute, "with -wait: how long to wait for every node to be healthy")
	reserveWait  = flag.Duration("reserve-timeout", 60*time.Second, "how long every reservation may take to appear")
	failoverWait = flag.Duration("failover-timeout", 60*time.Second, "how long every pair may take to be reachable again once a relay is stopped")
)

// Subsets of the control API's JSON (node.Status, node.PeerInfo, ...).
type status struct {
	PeerID       string `json:"peer_id"`
	Role         string `json:"role"`
	Network      string `json:"network"`
	Reservations []struct {
		Relay   string    `json:"relay"`
		Expires time.Time `json:"expires"`
	} `json:"reservations"`
}

type peerInfo struct {
	PeerID string `json:"peer_id"`
	State  string `json:"state"`
	Reason string `json:"reason"`
	Path   string `json:"path"`
}

type message struct {
	From string `json:"from"`
	Data string `json:"data"`
}

// row is one line of the summary table.
type row struct {
	step, pair, path, rtt, result string
	ok                            bool
	group                         int // rows of one check call stay together
}

type checker struct {
	compose []string          // the compose command with project and file
	ids     map[string]string // service -> container ID
	peerIDs map[string]string // service -> peer ID
	names   map[string]string // peer ID -> service
	runID   string

	mu      sync.Mutex
	group   int
	rows    []row
	notes   []string
	cleanup []func()
}

func main() {
	wait := flag.Bool("wait", false, "only wait until every node of the testnet is healthy")
	file := flag.String("f", "docker-compose.yml", "compose file")
	flag.Parse()
	compose, err := composeCommand()
	if err != nil {
		fatal(err)
	}
	c := &checker{compose: append(compose, "-p", project, "-f", *file),
		ids: map[string]string{}, peerIDs: map[string]string{}, names: map[string]string{},
		runID: fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffff)}
	if *wait {
		if err := c.waitHealthy(*healthWait); err != nil {
			c.dumpLogs()
			fatal(err)
		}
		return
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "\ninterrupted: restoring the testnet")
		c.runCleanup()
		os.Exit(130)
	}()
	ok := c.run()
	c.runCleanup()
	c.report()
	if !ok {
		c.dumpLogs()
		os.Exit(1)
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "testnet check: %v\n", err)
	os.Exit(1)
}

// composeCommand is $COMPOSE, else "docker compose" if it answers, else
// "docker-compose".
func composeCommand() ([]string, error) {
	if v := strings.Fields(os.Getenv("COMPOSE")); len(v) > 0 {
		return v, nil
	}
	if _, err := runCmd(20*time.Second, "docker", "compose", "version"); err == nil {
		return []string{"docker", "compose"}, nil
	}
	if _, err := runCmd(20*time.Second, "docker-compose", "version"); err == nil {
		return []string{"docker-compose"}, nil
	}
	return nil, errors.New("neither `docker compose` nor `docker-compose` answers")
}

// runCmd runs a command with a deadline and returns its standard output; the
// error carries its standard error.
func runCmd(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 2 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		return out.String(), fmt.Errorf("%s %s: no answer within %s", name, strings.Join(args, " "), timeout)
	}
	if err != nil {
		return out.String(), fmt.Errorf("%w: %s", err, firstLine(errb.String(), out.String()))
	}
	return out.String(), nil
}

// firstLine returns the first non-empty line of the first non-empty text,
// cut to a table cell's width.
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

func (c *checker) composeRun(timeout time.Duration, args ...string) (string, error) {
	full := append(slices.Clone(c.compose), args...)
	return runCmd(timeout, full[0], full[1:]...)
}

// ov runs the overlay binary in a service's container.
func (c *checker) ov(svc string, timeout time.Duration, args ...string) (string, error) {
	id, ok := c.ids[svc]
	if !ok {
		return "", fmt.Errorf("no container for %s", svc)
	}
	out, err := runCmd(timeout, "docker", append([]string{"exec", id, "/overlay"}, args...)...)
	if err != nil {
		return out, fmt.Errorf("%s: overlay %s: %w", svc, args[0], err)
	}
	return out, nil
}

func (c *checker) ovJSON(svc string, out any, timeout time.Duration, args ...string) error {
	// Flags go before the positional arguments.
	s, err := c.ov(svc, timeout, append([]string{args[0], "--json"}, args[1:]...)...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(s), out); err != nil {
		return fmt.Errorf("%s: overlay %s: bad JSON: %w", svc, args[0], err)
	}
	return nil
}

func (c *checker) status(svc string) (status, error) {
	var s status
	return s, c.ovJSON(svc, &s, 10*time.Second, "status", "--timeout", "5s")
}

func (c *checker) add(r row) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.group == 0 {
		c.group++
		r.group = c.group
	}
	c.rows = append(c.rows, r)
}

// newGroup returns a group number for the rows of one check.
func (c *checker) newGroup() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.group++
	return c.group
}

// progress reports on stderr what the check is doing, for logs of long or
// failing runs; the summary goes to stdout.
func (c *checker) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05.0"), fmt.Sprintf(format, args...))
}

func (c *checker) note(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.notes = append(c.notes, fmt.Sprintf(format, args...))
}

// onCleanup registers f to run at exit (or on interrupt) and returns it
// wrapped to run at most once, for calling earlier.
func (c *checker) onCleanup(f func()) func() {
	var once sync.Once
	g := func() { once.Do(f) }
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleanup = append(c.cleanup, g)
	return g
}

// runCleanup runs the cleanups once, newest first.
func (c *checker) runCleanup() {
	c.mu.Lock()
	fs := c.cleanup
	c.cleanup = nil
	c.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// resolve finds the container and peer ID of every node.
func (c *checker) resolve(services []string) error {
	for _, svc := range services {
		out, err := c.composeRun(30*time.Second, "ps", "-q", svc)
		if err != nil {
			return err
		}
		id := strings.TrimSpace(out)
		if id == "" || strings.Contains(id, "\n") {
			return fmt.Errorf("service %s: want one container, have %q (is the testnet up? make testnet)", svc, id)
		}
		c.ids[svc] = id
		s, err := c.status(svc)
		if err != nil {
			return err
		}
		c.peerIDs[svc] = s.PeerID
		c.names[s.PeerID] = svc
	}
	return nil
}

// waitHealthy waits until the container healthcheck (`overlay health`) of
// every node passes.
func (c *checker) waitHealthy(timeout time.Duration) error {
	start := time.Now()
	deadline := start.Add(timeout)
	last := ""
	for {
		out, err := c.composeRun(30*time.Second, "ps", "-q")
		if err == nil {
			ids := strings.Fields(out)
			if len(ids) < len(all) {
				err = fmt.Errorf("%d of %d containers exist", len(ids), len(all))
			} else {
				out, err = runCmd(30*time.Second, "docker", append([]string{"inspect", "--format",
					"{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}"}, ids...)...)
			}
		}
		if err == nil {
			var bad []string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Fields(l)
				if len(f) >= 2 && (f[1] == "exited" || f[1] == "dead") {
					return fmt.Errorf("node %s", strings.TrimPrefix(l, "/"))
				}
				if len(f) != 3 || f[1] != "running" || f[2] != "healthy" {
					bad = append(bad, strings.TrimPrefix(l, "/"))
				}
			}
			if len(bad) == 0 {
				fmt.Printf("testnet: all %d nodes healthy after %s\n", len(all), time.Since(start).Round(100*time.Millisecond))
				return nil
			}
			err = fmt.Errorf("not healthy yet: %s", strings.Join(bad, "; "))
		}
		last = err.Error()
		if time.Now().After(deadline) {
			return fmt.Errorf("testnet not healthy within %s: %s", timeout, last)
		}
		time.Sleep(time.Second)
	}
}

// run runs every check and reports whether all passed.
func (c *checker) run() bool {
	if err := c.resolve(all); err != nil {
		c.add(row{step: "setup", pair: "-", result: "FAIL: " + err.Error()})
		return false
	}
	fmt.Printf("testnet check %s: compose %q, nodes:\n", c.runID, strings.Join(c.compose[:len(c.compose)-4], " "))
	for _, svc := range all {
		fmt.Printf("  %-8s %s\n", svc, c.peerIDs[svc])
	}
	c.progress("reservations")
	c.checkReservations("reserve", relays, nil, nil, *reserveWait, time.Now())
	c.progress("messages between %d pairs", len(pairs()))
	c.checkMessages("message", pairs(), 30*time.Second, time.Now(), true)
	// Stopping relay2 first leaves every pair connected through relay1, so
	// that stopping relay1 next makes each of them find its way through
	// relay2 again.
	c.checkFailover("relay2", "relay1")
	c.checkFailover("relay1", "relay2")
	c.checkIntruder()
	for _, r := range c.rows {
		if !r.ok {
			return false
		}
	}
	return true
}

// pairs are all ordered pairs of distinct members.
func pairs() [][2]string {
	var out [][2]string
	for _, a := range members {
		for _, b := range members {
			if a != b {
				out = append(out, [2]string{a, b})
			}
		}
	}
	return out
}

// checkReservations waits until every member holds a reservation on each of
// want and on none of gone, and adds a row per member and relay of show
// (want if nil), with the ping time to the relay. It returns when the last
// member got there, counted from since.
func (c *checker) checkReservations(step string, want, gone, show []string, timeout time.Duration, since time.Time) time.Duration {
	if show == nil {
		show = want
	}
	group := c.newGroup()
	deadline := time.Now().Add(timeout)
	var worst time.Duration
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var held []string
			var err error
			for {
				var s status
				if s, err = c.status(m); err == nil {
					held = held[:0]
					for _, r := range s.Reservations {
						held = append(held, c.name(r.Relay))
					}
					err = reservationsOK(held, want, gone)
				}
				if err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			took := time.Since(since)
			mu.Lock()
			worst = max(worst, took)
			mu.Unlock()
			for _, r := range show {
				rw := row{step: step, pair: m + " -> " + r, path: "-", rtt: "-", group: group}
				switch {
				case err != nil:
					rw.result = fmt.Sprintf("FAIL after %s: %v (holds: %s)", took.Round(100*time.Millisecond), err, orNone(held))
				default:
					rw.ok = true
					rw.result = fmt.Sprintf("reserved (after %s)", took.Round(100*time.Millisecond))
					if len(gone) > 0 {
						rw.result = fmt.Sprintf("reserved; %s dropped (after %s)", strings.Join(gone, ", "), took.Round(100*time.Millisecond))
					}
					rw.path, rw.rtt = c.pathAndPing(m, r)
				}
				c.add(rw)
			}
		}()
	}
	wg.Wait()
	return worst
}

func reservationsOK(held, want, gone []string) error {
	var missing, extra []string
	for _, w := range want {
		if !slices.Contains(held, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range gone {
		if slices.Contains(held, g) {
			extra = append(extra, g)
		}
	}
	switch {
	case len(missing) > 0:
		return fmt.Errorf("no reservation on %s", strings.Join(missing, ", "))
	case len(extra) > 0:
		return fmt.Errorf("still holds a reservation on %s", strings.Join(extra, ", "))
	}
	return nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// name maps a peer ID to its service name, if known.
func (c *checker) name(id string) string {
	if n, ok := c.names[id]; ok {
		return n
	}
	return id
}

// pathAndPing returns how from reaches to (from from's peer book) and one
// ping round trip.
func (c *checker) pathAndPing(from, to string) (path, rtt string) {
	path, rtt = "?", "?"
	var res struct {
		RTTs []time.Duration `json:"rtts_ns"`
	}
	if err := c.ovJSON(from, &res, 15*time.Second, "ping", "--count", "1", "--timeout", "10s", c.peerIDs[to]); err == nil && len(res.RTTs) > 0 {
		rtt = fmtRTT(res.RTTs[0])
	}
	if p, err := c.bookEntry(from, c.peerIDs[to]); err == nil {
		path = p.Path
	}
	return path, rtt
}

func (c *checker) bookEntry(svc, id string) (peerInfo, error) {
	var ps []peerInfo
	if err := c.ovJSON(svc, &ps, 10*time.Second, "peers", "--timeout", "5s"); err != nil {
		return peerInfo{}, err
	}
	for _, p := range ps {
		if p.PeerID == id {
			return p, nil
		}
	}
	return peerInfo{}, fmt.Errorf("%s: %s not in the peer book", svc, c.name(id))
}

func fmtRTT(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dµs", d.Microseconds())
}

// checkMessages sends a message for every pair, retrying each until it is
// acknowledged or the overall timeout passes, then checks that it is in the
// receiver's inbox and that a pair of two private peers goes through a
// relay. It returns when the last pair got through, counted from since.
func (c *checker) checkMessages(step string, ps [][2]string, timeout time.Duration, since time.Time, firstTry bool) (time.Duration, bool) {
	deadline := time.Now().Add(timeout)
	group := c.newGroup()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var worst time.Duration
	allOK := true
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from, to := p[0], p[1]
			text := fmt.Sprintf("testnet-check %s %s: %s -> %s", c.runID, step, from, to)
			rw := row{step: step, pair: from + " -> " + to, path: "-", rtt: "-", group: group}
			var rtt time.Duration
			var err error
			tries := 0
			for {
				tries++
				per := min(30*time.Second, max(time.Until(deadline), time.Second))
				var res struct {
					RTT time.Duration `json:"rtt_ns"`
				}
				err = c.ovJSON(from, &res, per+5*time.Second, "send", "--timeout", per.String(), c.peerIDs[to], text)
				rtt = res.RTT
				if err == nil || time.Now().After(deadline) {
					break
				}
				c.progress("%s: %s -> %s: try %d failed after %s: %v", step, from, to, tries,
					time.Since(since).Round(100*time.Millisecond), err)
				time.Sleep(300 * time.Millisecond)
			}
			took := time.Since(since)
			if err == nil {
				err = c.inInbox(to, c.peerIDs[from], text)
			}
			if err == nil {
				var e peerInfo
				if e, err = c.bookEntry(from, c.peerIDs[to]); err == nil {
					rw.path = e.Path
					if slices.Contains(private, from) && slices.Contains(private, to) && e.Path != "relayed" {
						err = fmt.Errorf("path between two private peers is %q, want relayed", e.Path)
					}
				}
			}
			switch {
			case err != nil:
				rw.result = fmt.Sprintf("FAIL after %s, %s: %v", took.Round(100*time.Millisecond), plural(tries, "try", "tries"), err)
			case firstTry && tries == 1:
				rw.ok, rw.rtt, rw.result = true, fmtRTT(rtt), "delivered"
			default:
				rw.ok, rw.rtt = true, fmtRTT(rtt)
				rw.result = fmt.Sprintf("delivered after %s (%s)", took.Round(100*time.Millisecond), plural(tries, "try", "tries"))
			}
			mu.Lock()
			worst = max(worst, took)
			allOK = allOK && rw.ok
			mu.Unlock()
			c.add(rw)
		}()
	}
	wg.Wait()
	return worst, allOK
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// inInbox checks that svc received text from the peer ID from.
func (c *checker) inInbox(svc, from, text string) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		var msgs []message
		err := c.ovJSON(svc, &msgs, 10*time.Second, "inbox", "--timeout", "5s")
		if err == nil {
			for _, m := range msgs {
				if m.From == from && m.Data == text {
					return nil
				}
			}
			err = fmt.Errorf("acknowledged, but not in %s's inbox", svc)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkFailover stops the relay down, checks that every pair is reachable
// again through the relay other within the bound, starts down again and
// checks that every member reserves on it again.
func (c *checker) checkFailover(down, other string) {
	step := down + " stopped"
	c.progress("stopping %s", down)
	t0 := time.Now()
	if _, err := c.composeRun(60*time.Second, "stop", "-t", "10", down); err != nil {
		c.add(row{step: step, pair: "-", result: "FAIL: stop " + down + ": " + err.Error()})
		return
	}
	stopped := time.Since(t0)
	restart := c.onCleanup(func() { _, _ = c.composeRun(60*time.Second, "start", down) })
	worst, ok := c.checkMessages(step, pairs(), *failoverWait, t0, false)
	if ok {
		c.note("%s stopped (took %s): all %d pairs delivered through %s within %s of the stop (bound %s)",
			down, stopped.Round(100*time.Millisecond), len(pairs()), other, worst.Round(100*time.Millisecond), *failoverWait)
	} else {
		c.note("%s stopped (took %s): NOT all pairs reachable within %s", down, stopped.Round(100*time.Millisecond), *failoverWait)
	}
	c.checkReservations(step, []string{other}, []string{down}, nil, 30*time.Second, t0)

	c.progress("starting %s", down)
	t1 := time.Now()
	restart()
	back := c.checkReservations(down+" back", relays, nil, []string{down}, *reserveWait, t1)
	c.note("%s started: every member holds reservations on both relays again %s after the start", down, back.Round(100*time.Millisecond))
}

// checkIntruder starts a node with another network name on the public
// network and checks that the members refuse it, and that a private peer
// cannot reach it at all.
func (c *checker) checkIntruder() {
	step := "other network"
	c.progress("starting a node of another network")
	prof := []string{"--profile", intruder}
	rm := func() { _, _ = c.composeRun(60*time.Second, append(prof, "rm", "-f", "-s", "-v", intruder)...) }
	rm() // a fresh identity every run
	rm = c.onCleanup(rm)
	if _, err := c.composeRun(60*time.Second, append(prof, "up", "-d", intruder)...); err != nil {
		c.add(row{step: step, pair: "-", result: "FAIL: start intruder: " + err.Error()})
		return
	}
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err = c.resolve([]string{intruder}); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		c.add(row{step: step, pair: "-", result: "FAIL: intruder: " + err.Error()})
		return
	}
	iid := c.peerIDs[intruder]
	ipOut, err := runCmd(20*time.Second, "docker", "inspect", "--format",
		"{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", c.ids[intruder])
	ip := strings.TrimSpace(ipOut)
	if err != nil || ip == "" || strings.Contains(ip, " ") {
		c.add(row{step: step, pair: "-", result: fmt.Sprintf("FAIL: intruder address %q: %v", ip, err)})
		return
	}
	refused := func(from, target string) {
		rw := row{step: step, pair: from + " -> " + c.name(peerOf(target)), path: "-", rtt: "-"}
		_, err := c.ov(from, 25*time.Second, "connect", "--timeout", "15s", target)
		switch {
		case err == nil:
			rw.result = "FAIL: connected"
		case strings.Contains(err.Error(), "network mismatch"):
			rw.ok, rw.result = true, "refused: network mismatch"
		default:
			rw.result = "FAIL: not refused for the network: " + err.Error()
		}
		c.add(rw)
	}
	refused(intruder, "/dns4/relay1/tcp/4100/p2p/"+c.peerIDs["relay1"])
	refused(intruder, "/dns4/relay2/tcp/4101/ws/p2p/"+c.peerIDs["relay2"])
	refused(intruder, "/dns4/pub1/tcp/4100/p2p/"+c.peerIDs["pub1"])
	refused("pub1", "/ip4/"+ip+"/tcp/4100/p2p/"+iid)
	for _, r := range relays {
		rw := row{step: step, pair: r + " books " + intruder, path: "-", rtt: "-"}
		e, err := c.bookEntry(r, iid)
		switch {
		case err != nil:
			rw.result = "FAIL: " + err.Error()
		case e.State != "rejected" || !strings.Contains(e.Reason, "network mismatch"):
			rw.result = fmt.Sprintf("FAIL: state %s (%s), want rejected for network mismatch", e.State, e.Reason)
		default:
			rw.ok, rw.result = true, "rejected: "+e.Reason
		}
		c.add(rw)
	}
	// A private peer's network holds the relays only: the intruder, on the
	// public network, is out of its reach whatever its network name.
	for _, p := range private {
		rw := row{step: "isolation", pair: p + " -> " + intruder, path: "-", rtt: "-"}
		_, err := c.ov(p, 15*time.Second, "connect", "--timeout", "3s", "/ip4/"+ip+"/tcp/4101/ws/p2p/"+iid)
		switch {
		case err == nil:
			rw.result = "FAIL: reached a node outside its network"
		case strings.Contains(err.Error(), "handshake") || strings.Contains(err.Error(), "network mismatch"):
			rw.result = "FAIL: reached it (refused only by the handshake): " + err.Error()
		default:
			rw.ok, rw.result = true, "unreachable (dial fails)"
		}
		c.add(rw)
	}
	rm()
}

// peerOf returns the peer ID at the end of a /p2p/ multiaddr.
func peerOf(maddr string) string {
	i := strings.LastIndex(maddr, "/p2p/")
	if i < 0 {
		return maddr
	}
	return maddr[i+len("/p2p/"):]
}

func (c *checker) report() {
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tPAIR\tPATH\tRTT\tRESULT")
	failed := 0
	// Rows of one check come from goroutines: order them by pair.
	slices.SortStableFunc(c.rows, func(a, b row) int {
		if d := a.group - b.group; d != 0 {
			return d
		}
		return strings.Compare(a.pair, b.pair)
	})
	for _, r := range c.rows {
		if !r.ok {
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.step, r.pair, r.path, r.rtt, r.result)
	}
	tw.Flush()
	fmt.Println("\nPATH: how the first node reaches the second, from its peer book. RTT: one ping to the")
	fmt.Println("relay (reservation rows); send to acknowledgement (message rows).")
	fmt.Println()
	for _, n := range c.notes {
		fmt.Println(n)
	}
	if failed > 0 || len(c.rows) == 0 {
		fmt.Printf("FAIL: %d of %d checks failed\n", failed, len(c.rows))
		return
	}
	fmt.Printf("PASS: %d checks\n", len(c.rows))
}

// dumpLogs prints the end of every node's log, for a failed run.
func (c *checker) dumpLogs() {
	out, err := c.composeRun(60*time.Second, "logs", "--no-color", "--tail", "40")
	if err != nil {
		fmt.Fprintf(os.Stderr, "logs: %v\n", err)
	}
	fmt.Fprintf(os.Stderr, "\n--- last log lines of each node ---\n%s", out)
}
