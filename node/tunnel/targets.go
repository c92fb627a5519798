package tunnel

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// Targets restricts the hosts exposed services may connect to. An exposed
// service makes this node a TCP proxy for the members it admits, to
// whatever its target names; Targets keeps that to hosts the operator
// chose. The zero value admits any host, as before this setting existed,
// since nodes expose LAN hosts as well as their own ports.
//
// Addresses are checked when a service is exposed (a literal IP) and
// again at every connect, against the address actually dialed, so that a
// host name cannot resolve its way around the restriction.
type Targets struct {
	loopback bool
	nets     []netip.Prefix
}

// ParseTargets reads the --expose-targets value: "any", "loopback", or a
// comma-separated list of CIDR prefixes and single IPs, "loopback" among
// them if wanted ("loopback,192.168.1.0/24").
func ParseTargets(s string) (Targets, error) {
	var t Targets
	if s = strings.TrimSpace(s); s == "" || s == "any" {
		return t, nil
	}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "loopback":
			t.loopback = true
		case f == "any":
			return Targets{}, fmt.Errorf("expose targets %q: \"any\" goes alone", s)
		case strings.Contains(f, "/"):
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return Targets{}, fmt.Errorf("expose targets %q: %q is not a CIDR prefix", s, f)
			}
			t.nets = append(t.nets, p.Masked())
		default:
			a, err := netip.ParseAddr(f)
			if err != nil {
				return Targets{}, fmt.Errorf("expose targets %q: %q is not loopback, any, an IP or a CIDR prefix", s, f)
			}
			t.nets = append(t.nets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	return t, nil
}

// Any reports whether every host is admitted.
func (t Targets) Any() bool { return !t.loopback && len(t.nets) == 0 }

func (t Targets) String() string {
	if t.Any() {
		return "any"
	}
	var f []string
	if t.loopback {
		f = append(f, "loopback")
	}
	for _, p := range t.nets {
		f = append(f, p.String())
	}
	return strings.Join(f, ",")
}

// Set and String make *Targets a flag.Value.
func (t *Targets) Set(s string) error {
	v, err := ParseTargets(s)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

func (t Targets) allows(a netip.Addr) bool {
	if t.Any() {
		return true
	}
	a = a.Unmap()
	if t.loopback && a.IsLoopback() {
		return true
	}
	for _, p := range t.nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Check refuses a target HOST:PORT whose host is an IP outside t. A host
// name passes here; its addresses are checked when it is dialed.
func (t Targets) Check(target string) error {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return fmt.Errorf("target %q must be HOST:PORT", target)
	}
	if a, err := netip.ParseAddr(host); err == nil && !t.allows(a) {
		return fmt.Errorf("target %s is outside the exposure targets this node allows (%s)", target, t)
	}
	return nil
}

// control is a net.Dialer Control function refusing addresses outside t.
func (t Targets) control(network, address string, _ syscall.RawConn) error {
	if t.Any() {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("exposure target %s: %w", address, err)
	}
	if !t.allows(ap.Addr()) {
		return fmt.Errorf("exposure target %s is outside the allowed targets (%s)", address, t)
	}
	return nil
}
