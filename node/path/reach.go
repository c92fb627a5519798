package path

import (
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// reachability is what AutoNAT found: v1's verdict on the node as a whole,
// and v2's on each address.
type reachability struct {
	mu                     sync.Mutex
	overall                network.Reachability
	reachable, unreachable []ma.Multiaddr
}

// Reachability is a node's reachability as status shows it.
type Reachability struct {
	// State is "public" (others can dial this node), "private" (they
	// cannot: it is reached through relays) or "unknown" (not tested
	// yet, or nothing could test it).
	State string `json:"state"`
	// Why is where State comes from: "autonat" (peers dialed this node
	// back, or failed to), or "nat" (trusted peers see it at an address
	// none of its interfaces has, so a NAT stands in between and nothing
	// maps a port through it).
	Why string `json:"why,omitempty"`
	// Observed are the public addresses this node's relays and members
	// see it at: what hole punching offers.
	Observed    []string `json:"observed"`
	Reachable   []string `json:"reachable,omitempty"`
	Unreachable []string `json:"unreachable,omitempty"`
}

func (m *Manager) watchReachability() error {
	if err := m.follow(new(event.EvtLocalReachabilityChanged), func(e any) {
		r := m.autonat
		r.mu.Lock()
		r.overall = e.(event.EvtLocalReachabilityChanged).Reachability
		r.mu.Unlock()
	}); err != nil {
		return err
	}
	return m.follow(new(event.EvtHostReachableAddrsChanged), func(e any) {
		ev := e.(event.EvtHostReachableAddrsChanged)
		r := m.autonat
		r.mu.Lock()
		r.reachable, r.unreachable = ev.Reachable, ev.Unreachable
		r.mu.Unlock()
	})
}

// Reachability reports whether others can dial this node, and the public
// addresses it is seen at.
func (m *Manager) Reachability() Reachability {
	r := m.autonat
	r.mu.Lock()
	out := Reachability{State: "unknown", Observed: strs(m.holePunchAddrs()),
		Reachable: strs(r.reachable), Unreachable: strs(r.unreachable)}
	overall := r.overall
	r.mu.Unlock()
	switch {
	case len(out.Reachable) > 0 || overall == network.ReachabilityPublic:
		out.State, out.Why = "public", "autonat"
	case overall == network.ReachabilityPrivate || len(out.Unreachable) > 0:
		out.State, out.Why = "private", "autonat"
	case behindNAT(m.observed.addrs(m.cfg.Host.Network().ListenAddresses())):
		out.State, out.Why = "private", "nat"
	}
	return out
}

// behindNAT reports whether some observed address has an IP that none of
// this machine's interfaces has.
func behindNAT(observed []ma.Multiaddr) bool {
	ifaces, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return false
	}
	for _, o := range observed {
		ip, _, _, ok := thinWaist(o)
		if ok && !slices.ContainsFunc(ifaces, func(a ma.Multiaddr) bool { return len(a) > 0 && a[0].Value() == ip }) {
			return true
		}
	}
	return false
}

func strs(as []ma.Multiaddr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}
