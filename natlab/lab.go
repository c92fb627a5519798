package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// lab tracks what one trial created so close can remove exactly that: the
// namespaces it added (deleting a namespace deletes the veths inside it) and
// the processes it started (each in its own process group).
type lab struct {
	verbose bool
	nss     []string
	procs   []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// ip runs ip(8) with args and returns an error carrying its output.
func (l *lab) ip(ctx context.Context, args ...string) error {
	return l.cmd(ctx, "ip", args...)
}

func (l *lab) cmd(ctx context.Context, name string, args ...string) error {
	if l.verbose {
		fmt.Fprintf(os.Stderr, "+ %s %s\n", name, strings.Join(args, " "))
	}
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nsExec runs a command inside namespace ns and returns its standard output.
func (l *lab) nsExec(ctx context.Context, ns string, name string, args ...string) ([]byte, error) {
	full := append([]string{"netns", "exec", ns, name}, args...)
	c := exec.CommandContext(ctx, "ip", full...)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return out, fmt.Errorf("%s in %s: %v: %s", filepath.Base(name)+" "+strings.Join(args, " "), ns, err,
			tail(strings.TrimSpace(stderr.String()), 3))
	}
	return out, nil
}

func (l *lab) addNS(ctx context.Context, name string) error {
	if err := l.ip(ctx, "netns", "add", name); err != nil {
		return err
	}
	l.nss = append(l.nss, name)
	return l.ip(ctx, "-n", name, "link", "set", "lo", "up")
}

// veth makes a veth pair directly between two lab namespaces, so neither end
// ever exists in the root namespace.
func (l *lab) veth(ctx context.Context, nsA, ifA, nsB, ifB string) error {
	return l.ip(ctx, "-n", nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB)
}

// start runs BIN args inside ns, in its own process group, logging to logPath.
func (l *lab) start(ns, name, logPath string, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	c := exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	c.Stdout, c.Stderr = f, f
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if l.verbose {
		fmt.Fprintf(os.Stderr, "+ [%s] %s %s\n", ns, filepath.Base(bin), strings.Join(args, " "))
	}
	if err := c.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &proc{name: name, cmd: c, done: make(chan struct{}), log: f}
	l.procs = append(l.procs, p)
	go func() { c.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// close stops every process (SIGTERM to its group, SIGKILL after 5 s) and
// deletes the namespaces this lab added, newest first. It ignores the
// caller's context: cleanup must run even after Ctrl-C.
func (l *lab) close() error {
	for _, p := range l.procs {
		if !p.exited() {
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		}
	}
	for _, p := range l.procs {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		// A child that outlived its leader would still be in the group.
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		p.log.Close()
	}
	l.procs = nil
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ns := range slices.Backward(l.nss) {
		if err := l.ip(ctx, "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	l.nss = nil
	return errors.Join(errs...)
}

// build creates the topology:
//
//	nl-relay eth0 7.7.0.1 ─┐
//	nl-rtrA  wan  7.7.1.1 ─┼─ br0 in nl-inet (7.7.0.0/16)
//	nl-rtrB  wan  7.7.2.1 ─┘
//	nl-rtrA lan 10.10.1.1/24 ── nl-peerA eth0 10.10.1.2 (default via 10.10.1.1)
//	nl-rtrB lan 10.10.2.1/24 ── nl-peerB eth0 10.10.2.2 (default via 10.10.2.1)
//
// Routers masquerade out of wan (with --random-fully for "symmetric") and
// forward from wan to lan only what conntrack knows. No namespace has a
// route out of the lab: the only links are veths between lab namespaces.
func (l *lab) build(ctx context.Context, layout string) error {
	for _, ns := range allNamespaces() {
		if err := l.addNS(ctx, ns); err != nil {
			return err
		}
	}
	steps := [][]string{
		{"-n", nsInet, "link", "add", "br0", "type", "bridge"},
		{"-n", nsInet, "link", "set", "br0", "up"},
	}
	for _, s := range steps {
		if err := l.ip(ctx, s...); err != nil {
			return err
		}
	}
	attach := func(ns, inetIf, nsIf, addr string) error {
		if err := l.veth(ctx, nsInet, inetIf, ns, nsIf); err != nil {
			return err
		}
		for _, s := range [][]string{
			{"-n", nsInet, "link", "set", inetIf, "master", "br0", "up"},
			{"-n", ns, "addr", "add", addr + inetPrefix, "dev", nsIf},
			{"-n", ns, "link", "set", nsIf, "up"},
		} {
			if err := l.ip(ctx, s...); err != nil {
				return err
			}
		}
		return nil
	}
	if err := attach(nsRelay, "v-relay", "eth0", relayIP); err != nil {
		return err
	}
	for _, s := range sites {
		if err := attach(s.rtr, "v-rtr"+s.name, "wan", s.wanIP); err != nil {
			return err
		}
		if err := l.veth(ctx, s.rtr, "lan", s.peer, "eth0"); err != nil {
			return err
		}
		for _, a := range [][]string{
			{"-n", s.rtr, "addr", "add", s.lanGW + s.lanLen, "dev", "lan"},
			{"-n", s.rtr, "link", "set", "lan", "up"},
			{"-n", s.peer, "addr", "add", s.peerIP + s.lanLen, "dev", "eth0"},
			{"-n", s.peer, "link", "set", "eth0", "up"},
			{"-n", s.peer, "route", "add", "default", "via", s.lanGW},
		} {
			if err := l.ip(ctx, a...); err != nil {
				return err
			}
		}
		masq := []string{"-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
		if layout == "symmetric" {
			masq = append(masq, "--random-fully")
		}
		for _, c := range [][]string{
			{"ip", "netns", "exec", s.rtr, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
			append([]string{"ip", "netns", "exec", s.rtr, "iptables"}, masq...),
			{"ip", "netns", "exec", s.rtr, "iptables", "-A", "FORWARD", "-i", "wan", "-m", "conntrack",
				"--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
			{"ip", "netns", "exec", s.rtr, "iptables", "-A", "FORWARD", "-i", "wan", "-j", "DROP"},
		} {
			if err := l.cmd(ctx, c[0], c[1:]...); err != nil {
				return err
			}
		}
	}
	return nil
}

type statusJSON struct {
	PeerID       string `json:"peer_id"`
	Reservations []struct {
		Relay string `json:"relay"`
	} `json:"reservations"`
}

type peerJSON struct {
	ID   string `json:"peer_id"`
	Path string `json:"path"`
}

type soakJSON struct {
	Sent   int      `json:"sent"`
	Acked  int      `json:"acknowledged"`
	Lost   int      `json:"lost"`
	Errors []string `json:"first_errors"`
}

// runTrial builds the lab for layout, runs relay and peers, measures, and
// tears everything down before returning.
func runTrial(ctx context.Context, o options, layout, dir string) (res trialResult, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	l := &lab{verbose: o.verbose}
	defer func() {
		if cerr := l.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
	}()
	if err := l.build(ctx, layout); err != nil {
		return res, fmt.Errorf("build lab: %w", err)
	}

	// Relay.
	addrFile := filepath.Join(dir, "relay.addrs")
	relay, err := l.start(nsRelay, "relay", filepath.Join(dir, "relay.log"), o.bin, "relay",
		"--listen", fmt.Sprintf("/ip4/%s/tcp/%d", relayIP, relayTCP),
		"--listen", fmt.Sprintf("/ip4/%s/tcp/%d/ws", relayIP, relayWS),
		"--data", filepath.Join(dir, "relay"), "--api", "127.0.0.1:0", "--no-dht",
		"--addr-file", addrFile, "--network", network)
	if err != nil {
		return res, err
	}
	deadline := time.Now().Add(o.ready)
	var wsAddr string
	for wsAddr == "" {
		for _, a := range readLines(addrFile) {
			if strings.Contains(a, "/ws/p2p/") {
				wsAddr = a
			}
		}
		if wsAddr != "" {
			break
		}
		if err := waitStep(ctx, deadline, relay, dir, "relay address file"); err != nil {
			return res, err
		}
	}

	// Peers.
	type peerState struct {
		s    site
		p    *proc
		data string
		api  string
		id   string
	}
	var peers []*peerState
	for _, s := range sites {
		data := filepath.Join(dir, "peer"+s.name)
		p, err := l.start(s.peer, "peer"+s.name, filepath.Join(dir, "peer"+s.name+".log"), o.bin, "peer",
			"--relay", wsAddr, "--data", data, "--api", "127.0.0.1:0", "--no-dht", "--network", network)
		if err != nil {
			return res, err
		}
		peers = append(peers, &peerState{s: s, p: p, data: data})
	}
	for _, ps := range peers {
		for {
			if ps.api == "" {
				if a := readLines(filepath.Join(ps.data, "api.addr")); len(a) > 0 {
					ps.api = a[0]
				}
			}
			if ps.api != "" {
				qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				out, qerr := l.nsExec(qctx, ps.s.peer, o.bin, "status", "--json", "--api", ps.api)
				cancel()
				var st statusJSON
				if qerr == nil && decodeJSON("status", out, &st) == nil && len(st.Reservations) > 0 {
					ps.id = st.PeerID
					break
				}
			}
			if err := waitStep(ctx, deadline, ps.p, dir, "peer "+ps.s.name+" reservation"); err != nil {
				return res, err
			}
		}
	}
	a, b := peers[0], peers[1]

	// Soak from A to B while polling A's view of B's path.
	soakCtx, cancelSoak := context.WithCancel(ctx)
	defer cancelSoak()
	type soakOut struct {
		out []byte
		err error
	}
	soakDone := make(chan soakOut, 1)
	t0 := time.Now()
	go func() {
		out, err := l.nsExec(soakCtx, a.s.peer, o.bin, "send", "--json", "--api", a.api,
			"--soak", o.duration.String(), "--interval", o.interval.String(), "--timeout", "5s", b.id)
		soakDone <- soakOut{out, err}
	}()
	pathOf := func() string {
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		out, err := l.nsExec(qctx, a.s.peer, o.bin, "peers", "--json", "--api", a.api)
		if err != nil {
			return "error"
		}
		var ps []peerJSON
		if decodeJSON("peers", out, &ps) != nil {
			return "error"
		}
		for _, p := range ps {
			if p.ID == b.id {
				return p.Path
			}
		}
		return "unknown"
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var so soakOut
loop:
	for {
		select {
		case so = <-soakDone:
			break loop
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
			if !res.direct && pathOf() == "direct" {
				res.direct, res.directAfter = true, time.Since(t0)
			}
		}
	}
	res.endPath = pathOf()
	if res.endPath == "direct" && !res.direct {
		res.direct, res.directAfter = true, time.Since(t0)
	}
	var sj soakJSON
	if err := decodeJSON("send --soak", so.out, &sj); err != nil {
		if so.err != nil {
			return res, so.err
		}
		return res, err
	}
	res.sent, res.acked, res.lost, res.firstErrors = sj.Sent, sj.Acked, sj.Lost, sj.Errors
	if len(sj.Errors) > 0 {
		fmt.Fprintf(os.Stderr, "natlab: %s: first send errors: %s\n", layout, strings.Join(sj.Errors[:min(3, len(sj.Errors))], "; "))
	}
	for _, p := range []*proc{relay, a.p, b.p} {
		if p.exited() {
			return res, fmt.Errorf("%s exited during the trial; log: %s", p.name, p.log.Name())
		}
	}
	return res, nil
}

// waitStep sleeps a little, failing on interrupt, deadline, or the awaited
// process having exited.
func waitStep(ctx context.Context, deadline time.Time, p *proc, dir, what string) error {
	if p.exited() {
		log, _ := os.ReadFile(p.log.Name())
		return fmt.Errorf("waiting for %s: %s exited:\n%s", what, p.name, tail(string(log), 10))
	}
	if time.Now().After(deadline) {
		log, _ := os.ReadFile(p.log.Name())
		return fmt.Errorf("timed out waiting for %s; last lines of %s log:\n%s", what, p.name, tail(string(log), 10))
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(200 * time.Millisecond):
		return nil
	}
}
