package client

import (
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// circuitAddrs builds <relay addr>/p2p/<relay>/p2p-circuit from the relay
// addresses this node was configured with. The relay's own announced list
// is left out: it holds every interface it has (loopback, networks the
// dialer cannot reach), and every dead address advertised costs a dialing
// peer a relay dial timeout.
func circuitAddrs(r peer.AddrInfo) []ma.Multiaddr {
	suffix := ma.StringCast("/p2p/" + r.ID.String() + "/p2p-circuit")
	var out []ma.Multiaddr
	seen := map[string]bool{}
	for _, a := range r.Addrs {
		a, _ = ma.SplitFunc(a, func(c ma.Component) bool { return c.Code() == ma.P_P2P })
		if a == nil || seen[a.String()] {
			continue
		}
		seen[a.String()] = true
		out = append(out, a.Encapsulate(suffix))
	}
	return out
}

// CircuitAddrs returns the relayed addresses, without the final /p2p/ of
// the peer, that any peer reserved on our relays has: a way to try a peer
// no one has told us about, since members of a small network often share
// relays.
func (k *Keeper) CircuitAddrs() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, r := range k.relays {
		out = append(out, circuitAddrs(r)...)
	}
	return out
}

// ThroughDeadRelay reports whether a is a relayed address through one of
// the configured relays on which no reservation is held now: the keeper
// cannot reach it, so a dial through it would most likely hang.
func (k *Keeper) ThroughDeadRelay(a ma.Multiaddr) bool {
	before, _ := ma.SplitFunc(a, func(c ma.Component) bool { return c.Code() == ma.P_CIRCUIT })
	if before == nil || len(before) == len(a) {
		return false // not relayed
	}
	_, id := peer.SplitAddr(before)
	if id == "" {
		return false
	}
	k.mu.Lock()
	_, held := k.rsvps[id]
	k.mu.Unlock()
	_, configured := k.kicks[id]
	return configured && !held
}
