// Command revoke measures how fast a revocation reaches every node of a
// container network of 2 relays and N members in certificate mode
// (testnet/revocation.yml), against issue 24's goal: every node refuses a
// revoked member within 10 s of publishing, and the revoked member can no
// longer send to, reach or reserve on anyone.
//
//	make build && docker build --target testnet -t overlay-revoke:local .
//	go run ./testnet/revoke [-members 20] [-keep]
//
// It starts the network (compose project overlay-revoke), waits until every
// node is healthy, signs a revocation of one member with the TEST CA of
// testnet/keys (bin/overlay ca revoke), publishes it at another member
// (overlay ca publish, through docker exec), polls every node's
// 'overlay ca status' until it holds the list, then checks the revoked
// member: no reservation left, its messages refused, members unreachable.
// It prints a table and exits 1 if a check fails or the slowest node took
// longer than -goal. The network is removed at the end unless -keep.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/overlay-net/overlay/testnet/internal/compose"
)

const project = "overlay-revoke"

var (
	members = flag.Int("members", 20, "members to start")
	goal    = flag.Duration("goal", 10*time.Second, "every node must hold the list within this long of publishing")
	keep    = flag.Bool("keep", false, "leave the network running")
	file    = flag.String("f", "testnet/revocation.yml", "compose file")
	bin     = flag.String("bin", "bin/overlay", "the overlay binary on this host, to sign the list (make build)")
	keys    = flag.String("keys", "testnet/keys", "directory of the TEST CA (ca.key, ca-pub.key)")
	upWait  = flag.Duration("health-timeout", 3*time.Minute, "how long the nodes may take to be healthy")
)

type node struct {
	*compose.Node
	peer string
}

func main() {
	flag.Parse()
	cc, err := compose.Command()
	if err != nil {
		fatal(err)
	}
	cc = append(cc, "-p", project, "-f", *file)
	if _, err := run(5*time.Minute, cc[0], append(cc[1:], "up", "-d", "--scale", fmt.Sprintf("member=%d", *members))...); err != nil {
		fatal(fmt.Errorf("start the network: %w", err))
	}
	ok := check()
	if !*keep {
		if _, err := run(2*time.Minute, cc[0], append(cc[1:], "down", "-v", "--remove-orphans")...); err != nil {
			fmt.Fprintf(os.Stderr, "remove the network: %v\n", err)
		}
	}
	if !ok {
		os.Exit(1)
	}
}

func check() bool {
	nodes, err := listNodes()
	if err != nil {
		return fail(err)
	}
	if err := waitHealthy(nodes, *upWait); err != nil {
		return fail(err)
	}
	var ms []*node
	for _, n := range nodes {
		st, err := status(n)
		if err != nil {
			return fail(err)
		}
		n.peer = st.PeerID
		if n.Service == "member" {
			ms = append(ms, n)
		}
	}
	if len(ms) < 2 {
		return fail(fmt.Errorf("%d members running, want at least 2", len(ms)))
	}
	publisher, victim := ms[0], ms[1]
	fmt.Printf("%d nodes healthy (%d relays, %d members); revoking %s (%s), publishing at %s\n",
		len(nodes), len(nodes)-len(ms), len(ms), victim.Name, victim.peer, publisher.Name)

	// Before: the member to be revoked reaches the publisher (through a
	// relay), so that what fails afterwards is the revocation, not a path.
	if _, err := ov(victim, 40*time.Second, "send", "--timeout", "30s", publisher.peer, "before revocation"); err != nil {
		return fail(fmt.Errorf("before the revocation: %w", err))
	}
	fmt.Printf("before: %s sent a message to %s\n", victim.Name, publisher.Name)
	list, err := signRevocation(victim.peer)
	if list != "" {
		defer os.RemoveAll(filepath.Dir(list))
	}
	if err != nil {
		return fail(err)
	}
	if _, err := run(30*time.Second, "docker", "cp", list, publisher.ID+":/data/publish.pem"); err != nil {
		return fail(fmt.Errorf("copy the list into %s: %w", publisher.Name, err))
	}

	// When each node took the list is read from its own log line ("new
	// revocation list", stamped by the node): the containers share the
	// host's clock, and polling through docker exec would measure docker.
	start := time.Now()
	out, err := ov(publisher, 30*time.Second, "ca", "publish", "/data/publish.pem")
	if err != nil {
		return fail(fmt.Errorf("publish: %w", err))
	}
	fmt.Print(out)
	held := map[string]time.Time{}
	_ = eventually(*goal+20*time.Second, func() error {
		missing := 0
		for _, n := range nodes {
			if _, ok := held[n.Name]; ok {
				continue
			}
			if at, ok := tookList(n); ok {
				held[n.Name] = at
			} else {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d nodes without the list", missing)
		}
		return nil
	})
	published, ok := held[publisher.Name]
	if !ok {
		return fail(fmt.Errorf("the publisher %s logged no new list", publisher.Name))
	}
	fmt.Printf("the publisher took the list %s after 'ca publish' started (docker exec and the API)\n",
		published.Sub(start).Round(time.Millisecond))

	ok = true
	var slowest time.Duration
	names := make([]string, 0, len(nodes))
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	sort.Strings(names)
	fmt.Printf("\n%-36s %s\n", "node", "holds the list (so refuses the revoked member) after")
	for _, name := range names {
		at, got := held[name]
		d := at.Sub(published)
		res := d.Round(time.Millisecond).String()
		switch {
		case !got:
			res, ok = "NEVER", false
		case name == victim.Name:
			res += " (the revoked member, told why)"
		default:
			slowest = max(slowest, d)
		}
		fmt.Printf("%-36s %s\n", name, res)
	}
	fmt.Printf("\nslowest node: %s after the publisher (goal %s)\n", slowest.Round(time.Millisecond), *goal)
	if slowest > *goal {
		ok = false
		fmt.Println("FAIL: slower than the goal")
	}

	// The victim: no reservation left, refused by the relays, reaches nobody.
	if err := eventually(10*time.Second, func() error {
		st, err := status(victim)
		if err == nil && len(st.Reservations) > 0 {
			err = fmt.Errorf("still holds %d reservations", len(st.Reservations))
		}
		return err
	}); err != nil {
		ok = false
		fmt.Printf("FAIL: the revoked member's reservations: %v\n", err)
	} else {
		fmt.Printf("the revoked member's own status lists no reservation %s after publishing (its keeper's view; relays refuse it at once)\n",
			time.Since(start).Round(time.Millisecond))
	}
	if out, err := ov(victim, 20*time.Second, "send", "--timeout", "10s", publisher.peer, "after revocation"); err == nil {
		ok = false
		fmt.Printf("FAIL: the revoked member sent a message: %s\n", out)
	} else {
		fmt.Printf("revoked member's message refused: %s\n", compose.FirstLine(err.Error()))
	}
	if _, err := ov(publisher, 20*time.Second, "connect", "--timeout", "10s", victim.peer); err == nil {
		ok = false
		fmt.Println("FAIL: a member reached the revoked member")
	} else {
		fmt.Printf("member cannot reach the revoked member: %s\n", compose.FirstLine(err.Error()))
	}
	for _, n := range nodes {
		if n.Service != "member" && n != victim {
			st, err := status(n)
			if err == nil {
				fmt.Printf("%s refusals: revoked (reservation) %d, revoked (circuit) %d\n", n.Name,
					st.Service.Refusals["revoked (reservation)"], st.Service.Refusals["revoked (circuit)"])
			}
		}
	}
	if ok {
		fmt.Println("\nPASS")
	}
	return ok
}

type nodeStatus struct {
	PeerID       string            `json:"peer_id"`
	Reservations []json.RawMessage `json:"reservations"`
	Service      struct {
		Refusals map[string]int64 `json:"refusals"`
	} `json:"relay_service"`
}

func status(n *node) (nodeStatus, error) {
	var st nodeStatus
	out, err := ov(n, 20*time.Second, "status", "--json")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("%s: status --json: %w", n.Name, err)
	}
	return st, nil
}

// tookList returns the time n logged taking revocation list version 1.
func tookList(n *node) (time.Time, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "logs", n.ID).CombinedOutput() // the node logs to stderr
	if err != nil {
		return time.Time{}, false
	}
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.Contains(l, `msg="new revocation list" version=1 `) {
			continue
		}
		f := strings.Fields(l)
		if len(f) == 0 || !strings.HasPrefix(f[0], "time=") {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time="))
		if err == nil {
			return at, true
		}
	}
	return time.Time{}, false
}

// signRevocation signs a list revoking id with the TEST CA, in a temporary
// CA directory, and returns its path.
func signRevocation(id string) (string, error) {
	dir, err := os.MkdirTemp("", "overlay-revoke-ca-")
	if err != nil {
		return "", err
	}
	list := filepath.Join(dir, "revocations.pem") // returned on error too, for its removal
	for src, dst := range map[string]string{"ca.key": "ca.key", "ca-pub.key": "ca.pub"} {
		b, err := os.ReadFile(filepath.Join(*keys, src))
		if err != nil {
			return list, fmt.Errorf("read the TEST CA: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o600); err != nil {
			return list, err
		}
	}
	if _, err := run(30*time.Second, *bin, "ca", "revoke", "--ca", dir, id); err != nil {
		return list, fmt.Errorf("sign the list (is %s built? make build): %w", *bin, err)
	}
	return list, nil
}

func listNodes() ([]*node, error) {
	cs, err := compose.List(context.Background(), project)
	nodes := make([]*node, len(cs))
	for i, n := range cs {
		nodes[i] = &node{Node: n}
	}
	return nodes, err
}

func waitHealthy(nodes []*node, d time.Duration) error {
	cs := make([]*compose.Node, len(nodes))
	for i, n := range nodes {
		cs[i] = n.Node
	}
	return compose.WaitHealthy(context.Background(), cs, d)
}

func ov(n *node, timeout time.Duration, args ...string) (string, error) {
	return compose.Exec(context.Background(), n.Node, timeout, args...)
}

func eventually(d time.Duration, fn func() error) error {
	return compose.Eventually(context.Background(), d, fn)
}

func run(timeout time.Duration, name string, args ...string) (string, error) {
	return compose.Run(context.Background(), timeout, name, args...)
}

func fail(err error) bool {
	fmt.Fprintf(os.Stderr, "revocation check: %v\n", err)
	return false
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "revocation check: %v\n", err)
	os.Exit(1)
}
