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
// else whichever answers. Every wait is bounded. As root, the interface
// step also runs the host's ping, curl, ssh, sshd, iperf3 and python3
// inside the containers' network namespaces (iface.go); without root or
// a program, it is skipped with a NOTICE.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/overlay-net/overlay/testnet/internal/compose"
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

// Subsets of the control API's JSON (node.Status, book.PeerInfo, ...).
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
	cleaned bool // runCleanup ran: a cleanup registered now runs at once
}

func main() {
	wait := flag.Bool("wait", false, "only wait until every node of the testnet is healthy")
	file := flag.String("f", "docker-compose.yml", "compose file")
	flag.Parse()
	cc, err := compose.Command()
	if err != nil {
		fatal(err)
	}
	c := &checker{compose: append(cc, "-p", project, "-f", *file),
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

// runCmd runs a command with a deadline (compose.Run).
func runCmd(timeout time.Duration, name string, args ...string) (string, error) {
	return compose.Run(context.Background(), timeout, name, args...)
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
// wrapped to run at most once, for calling earlier. Once the cleanups
// ran, f runs at once.
func (c *checker) onCleanup(f func()) func() {
	var once sync.Once
	g := func() { once.Do(f) }
	c.mu.Lock()
	if c.cleaned {
		c.mu.Unlock()
		g()
		return g
	}
	defer c.mu.Unlock()
	c.cleanup = append(c.cleanup, g)
	return g
}

// owned runs start with undo registered as a cleanup, so that whatever
// start made is undone at exit or on interrupt, even one that comes while
// start runs: undo then waits for start to return. If the cleanups already
// ran, start does not run. undo must cope with a start that failed part
// way. It returns undo, wrapped to run at most once, for calling earlier.
func (c *checker) owned(start func() error, undo func()) (func(), error) {
	var mu sync.Mutex
	done := false
	stop := c.onCleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		done = true
		undo()
	})
	mu.Lock()
	defer mu.Unlock()
	if done {
		return stop, errors.New("interrupted: not started")
	}
	return stop, start()
}

// runCleanup runs the cleanups once, newest first.
func (c *checker) runCleanup() {
	c.mu.Lock()
	fs := c.cleanup
	c.cleanup = nil
	c.cleaned = true
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
	c.progress("tunnel peer1 -> peer2")
	c.checkTunnel("peer1", "peer2", 30*time.Second)
	c.progress("interface: real programs over the overlay interface")
	c.checkInterface()
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
