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

// start runs BIN args inside ns, in its own process group, appending its
// output to logPath.
func (l *lab) start(ns, name, logPath string, bin string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
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

// stop ends p like close does (SIGTERM to its group, SIGKILL after 5 s) and
// waits for it.
func (p *proc) stop() {
	if !p.exited() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	// A child that outlived its leader would still be in the group.
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
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
		p.stop()
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
//	nl-relay eth0 7.7.0.1/24 ─┐
//	nl-rtrA  wan  7.7.1.1/24 ─┼─ nl-inet, a router: 7.7.0.254, 7.7.1.254, 7.7.2.254
//	nl-rtrB  wan  7.7.2.1/24 ─┘
//	nl-rtrA lan 10.10.1.1/24 ── nl-peerA eth0 10.10.1.2 (default via 10.10.1.1)
//	nl-rtrB lan 10.10.2.1/24 ── nl-peerB eth0 10.10.2.2 (default via 10.10.2.1)
//
// Routers masquerade out of wan as the scenario says and, like home
// routers, let in from wan only what conntrack knows, both to the LAN and to
// themselves; the rest is dropped silently (no RST, no ICMP), so a hole-punch
// packet that arrives before the other side's has opened the mapping is not
// answered with one that kills the attempt. The scenario may reject instead
// or have no firewall at all (filter), put a carrier-grade NAT between a
// router and the internet (cgnat: router wan 100.64.N.2/24 via nl-cgnX, whose
// wan takes the router's public address), or put peer B on router A's LAN
// (sameLAN: a bridge lan in nl-rtrA, peer B at 10.10.1.3, no nl-rtrB). No
// namespace has a route out of the lab: the only links are veths between
// lab namespaces. The internet routes (one hop, which decrements the IP
// TTL) rather than switches, as between real sites: a packet sent with
// TTL 2 from a peer leaves its router and dies in nl-inet.
func (l *lab) build(ctx context.Context, sc scenario) error {
	for _, ns := range sc.namespaces() {
		if err := l.addNS(ctx, ns); err != nil {
			return err
		}
	}
	if err := l.cmd(ctx, "ip", "netns", "exec", nsInet, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		return err
	}
	// attach links ns to the internet router: addr/24 on nsIf, the
	// router's side .254 of the same /24, ns's default route through it.
	attach := func(ns, inetIf, nsIf, addr string) error {
		if err := l.veth(ctx, nsInet, inetIf, ns, nsIf); err != nil {
			return err
		}
		gw := inetGateway(addr)
		for _, s := range [][]string{
			{"-n", nsInet, "addr", "add", gw + inetPrefix, "dev", inetIf},
			{"-n", nsInet, "link", "set", inetIf, "up"},
			{"-n", ns, "addr", "add", addr + inetPrefix, "dev", nsIf},
			{"-n", ns, "link", "set", nsIf, "up"},
			{"-n", ns, "route", "add", "default", "via", gw},
		} {
			if err := l.ip(ctx, s...); err != nil {
				return err
			}
		}
		return nil
	}
	iptables := func(ns string, rules ...[]string) error {
		for _, r := range rules {
			if err := l.cmd(ctx, "ip", append([]string{"netns", "exec", ns, "iptables"}, r...)...); err != nil {
				return err
			}
		}
		return nil
	}
	if err := attach(nsRelay, "v-relay", "eth0", relayIP); err != nil {
		return err
	}
	for i, s := range sc.sites() {
		peerLink := [][]string{
			{"-n", s.peer, "addr", "add", s.peerIP + s.lanLen, "dev", "eth0"},
			{"-n", s.peer, "link", "set", "eth0", "up"},
			{"-n", s.peer, "route", "add", "default", "via", s.lanGW},
		}
		if sc.sameLAN {
			// Router A's LAN is a bridge with one port per peer.
			lanIf := "lan" + s.name
			if err := l.veth(ctx, s.rtr, lanIf, s.peer, "eth0"); err != nil {
				return err
			}
			cmds := [][]string{}
			if i == 0 {
				cmds = append(cmds, []string{"-n", s.rtr, "link", "add", "lan", "type", "bridge"},
					[]string{"-n", s.rtr, "addr", "add", s.lanGW + s.lanLen, "dev", "lan"},
					[]string{"-n", s.rtr, "link", "set", "lan", "up"})
			}
			cmds = append(cmds, []string{"-n", s.rtr, "link", "set", lanIf, "master", "lan", "up"})
			for _, a := range append(cmds, peerLink...) {
				if err := l.ip(ctx, a...); err != nil {
					return err
				}
			}
			if i == 1 {
				continue // router A is built already
			}
		} else {
			if err := l.veth(ctx, s.rtr, "lan", s.peer, "eth0"); err != nil {
				return err
			}
			for _, a := range append([][]string{
				{"-n", s.rtr, "addr", "add", s.lanGW + s.lanLen, "dev", "lan"},
				{"-n", s.rtr, "link", "set", "lan", "up"},
			}, peerLink...) {
				if err := l.ip(ctx, a...); err != nil {
					return err
				}
			}
		}
		if sc.cgnat[i] {
			// The carrier's NAT holds the public address; the router's
			// wan is on the carrier's shared range 100.64.0.0/10.
			cgnIP, rtrIP := fmt.Sprintf("100.64.%d.1", i+1), fmt.Sprintf("100.64.%d.2", i+1)
			if err := attach(s.cgn, "v-cgn"+s.name, "wan", s.wanIP); err != nil {
				return err
			}
			if err := l.veth(ctx, s.cgn, "cust", s.rtr, "wan"); err != nil {
				return err
			}
			for _, a := range [][]string{
				{"-n", s.cgn, "addr", "add", cgnIP + "/24", "dev", "cust"},
				{"-n", s.cgn, "link", "set", "cust", "up"},
				{"-n", s.rtr, "addr", "add", rtrIP + "/24", "dev", "wan"},
				{"-n", s.rtr, "link", "set", "wan", "up"},
				{"-n", s.rtr, "route", "add", "default", "via", cgnIP},
			} {
				if err := l.ip(ctx, a...); err != nil {
					return err
				}
			}
			if err := l.cmd(ctx, "ip", "netns", "exec", s.cgn, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
				return err
			}
			if err := iptables(s.cgn, append([][]string{{"-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}},
				filterRules(filterDrop)...)...); err != nil {
				return err
			}
		} else if err := attach(s.rtr, "v-rtr"+s.name, "wan", s.wanIP); err != nil {
			return err
		}
		if err := l.cmd(ctx, "ip", "netns", "exec", s.rtr, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
			return err
		}
		masq := []string{"-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
		if sc.nat[i] == symmetric {
			masq = append(masq, "--random-fully")
		}
		rules := [][]string{masq}
		if sc.dropUDP[i] {
			rules = append(rules, []string{"-A", "FORWARD", "-p", "udp", "-j", "DROP"})
		}
		if err := iptables(s.rtr, append(rules, filterRules(sc.filter[i])...)...); err != nil {
			return err
		}
	}
	return nil
}

// filterRules are a router's iptables rules for what comes in on wan: what
// conntrack knows passes, the rest is dropped or rejected, in FORWARD and
// INPUT alike; filterOpen has none.
func filterRules(f filter) [][]string {
	var rules [][]string
	if f == filterOpen {
		return nil
	}
	for _, chain := range []string{"FORWARD", "INPUT"} {
		rules = append(rules, []string{"-A", chain, "-i", "wan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"})
		if f == filterReject {
			rules = append(rules,
				[]string{"-A", chain, "-i", "wan", "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"},
				[]string{"-A", chain, "-i", "wan", "-j", "REJECT", "--reject-with", "icmp-port-unreachable"})
		} else {
			rules = append(rules, []string{"-A", chain, "-i", "wan", "-j", "DROP"})
		}
	}
	return rules
}

// inetGateway is nl-inet's address on the /24 of a lab address a.b.c.d:
// a.b.c.254.
func inetGateway(addr string) string {
	return addr[:strings.LastIndex(addr, ".")] + ".254"
}
