// Package listen binds a node's configured listen addresses one by one, so
// that an address that does not bind is an error naming it, not a silent
// gap.
package listen

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// Bind binds every address of addrs on nw, each on its own, and returns
// one error per address that could not be bound, naming it. libp2p's swarm,
// given them all at once, fails only when every one fails: a relay whose
// WebSocket port is taken would run without WebSocket, locking out every
// peer that can use nothing else, and say nothing.
//
// /tcp/P and /tcp/P/ws are two listeners on one port here (the node's
// transports do not share a TCP listener), so configuring both is a bind
// failure too. A /tcp/0 or /udp/0 address binds whatever port is free.
func Bind(nw network.Network, addrs []ma.Multiaddr) []error {
	if len(addrs) == 0 {
		return nil
	}
	sw, ok := nw.(*swarm.Swarm)
	if !ok {
		// Not libp2p's swarm: no way to listen on one address and learn
		// its own error, so at least say which were asked for.
		if err := nw.Listen(addrs...); err != nil {
			return []error{fmt.Errorf("listen on %v: %w", addrs, err)}
		}
		return nil
	}
	// In the swarm's own order: a transport that shares another's port
	// (WebTransport on QUIC's) must come after it.
	addrs = slices.Clone(addrs)
	order := func(a ma.Multiaddr) int {
		if l, ok := sw.TransportForListening(a).(swarm.OrderedListener); ok {
			return l.ListenOrder()
		}
		return 0
	}
	slices.SortStableFunc(addrs, func(a, b ma.Multiaddr) int { return cmp.Compare(order(a), order(b)) })
	var errs []error
	for _, a := range addrs {
		if err := sw.AddListenAddr(a); err != nil {
			errs = append(errs, fmt.Errorf("listen on %s: %w", a, err))
		}
	}
	return errs
}
