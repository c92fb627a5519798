package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// nat is how a router maps a LAN host's outgoing flows to its WAN address.
type nat int

const (
	// cone: MASQUERADE, which keeps the source port when it is free, so one
	// LAN socket gets the same public port towards every destination
	// (endpoint-independent mapping). Filtering stays endpoint-dependent:
	// only replies to what went out come back in.
	cone nat = iota
	// symmetric: MASQUERADE --random-fully, a fresh random port per flow.
	symmetric
)

func (n nat) String() string {
	if n == symmetric {
		return "symmetric"
	}
	return "cone"
}

// expect is what a scenario's trials must show under -check.
type expect int

const (
	mayDirect   expect = iota // no requirement on the path
	mustDirect                // every trial reaches a direct path
	mustRelayed               // no trial ever shows a direct path
)

// scenario is one row of the table: a layout of the routers and peers,
// optionally with a fault injected while messages flow.
type scenario struct {
	name    string
	nat     [2]nat  // routers A and B
	dropUDP [2]bool // router drops all forwarded UDP, both ways
	wsOnly  bool    // peers run with --ws-only
	fault   *fault
	expect  expect
}

// fault is something done to the lab while the soak runs, after the path
// went direct (or after -fault-after if it never does).
type fault struct {
	name string
	what string // for the log
	run  func(ctx context.Context, t *trial) error
}

// wanOutage is how long fault:wan-down keeps router A's WAN link down.
const wanOutage = 10 * time.Second

var layouts = []scenario{
	{name: "cone", nat: [2]nat{cone, cone}, expect: mustDirect},
	{name: "cone-symmetric", nat: [2]nat{cone, symmetric}},
	{name: "symmetric", nat: [2]nat{symmetric, symmetric}},
	{name: "udp-drop", nat: [2]nat{cone, cone}, dropUDP: [2]bool{false, true}},
	{name: "ws-only", nat: [2]nat{cone, cone}, wsOnly: true, expect: mustRelayed},
}

var faults = []fault{
	{name: "conntrack-flush", what: "conntrack -F on router A", run: func(ctx context.Context, t *trial) error {
		return t.l.cmd(ctx, "ip", "netns", "exec", sites[0].rtr, "conntrack", "-F")
	}},
	{name: "wan-down", what: fmt.Sprintf("router A's WAN link down for %s", wanOutage), run: func(ctx context.Context, t *trial) error {
		if err := t.l.ip(ctx, "-n", sites[0].rtr, "link", "set", "wan", "down"); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(wanOutage): // the fault's own duration
		}
		// Bring it back even when the trial is being cancelled, so the
		// rest of the trial (or its teardown) sees the lab as built.
		upCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return t.l.ip(upCtx, "-n", sites[0].rtr, "link", "set", "wan", "up")
	}},
	{name: "relay-restart", what: "relay killed (SIGTERM) and restarted with the same data directory and addresses", run: func(ctx context.Context, t *trial) error {
		return t.restartRelay(ctx)
	}},
	{name: "direct-cut", what: "router A drops everything to and from router B's WAN address from now on", run: func(ctx context.Context, t *trial) error {
		for _, dir := range []string{"-s", "-d"} {
			if err := t.l.cmd(ctx, "ip", "netns", "exec", sites[0].rtr, "iptables", "-I", "FORWARD", "1", dir, sites[1].wanIP, "-j", "DROP"); err != nil {
				return err
			}
		}
		return nil
	}},
}

// faultRows are the fault scenarios: every fault on the cone layout, where
// the path goes direct before the fault, and the relay restart on ws-only,
// where the relay carries every message.
func faultRows() []scenario {
	var out []scenario
	for _, fl := range [][2]string{{"conntrack-flush", "cone"}, {"wan-down", "cone"}, {"relay-restart", "cone"},
		{"direct-cut", "cone"}, {"relay-restart", "ws-only"}} {
		s := layouts[slices.IndexFunc(layouts, func(s scenario) bool { return s.name == fl[1] })]
		s.fault = &faults[slices.IndexFunc(faults, func(f fault) bool { return f.name == fl[0] })]
		s.name = "fault:" + fl[0]
		if fl[1] != "cone" {
			s.name += "@" + fl[1]
		}
		out = append(out, s)
	}
	return out
}

// parseScenarios turns -layout into rows: a comma list of names, "layouts"
// (every layout), "faults" (every fault), "all", or "none".
func parseScenarios(spec string) ([]scenario, error) {
	all := append(slices.Clone(layouts), faultRows()...)
	var out []scenario
	add := func(s scenario) {
		if !slices.ContainsFunc(out, func(o scenario) bool { return o.name == s.name }) {
			out = append(out, s)
		}
	}
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		switch name {
		case "none": // with -clean: only remove leftovers
			continue
		case "all":
			for _, s := range all {
				add(s)
			}
			continue
		case "layouts":
			for _, s := range layouts {
				add(s)
			}
			continue
		case "faults":
			for _, s := range faultRows() {
				add(s)
			}
			continue
		}
		i := slices.IndexFunc(all, func(s scenario) bool { return s.name == name || s.name == "fault:"+name })
		if i < 0 {
			var names []string
			for _, s := range all {
				names = append(names, s.name)
			}
			return nil, fmt.Errorf("unknown layout or fault %q; known: %s, or all, layouts, faults", name, strings.Join(names, ", "))
		}
		add(all[i])
	}
	return out, nil
}
