package node

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// listen binds every configured listen address, each on its own, and fails
// naming each address that could not be bound and why. libp2p's swarm,
// given them all at once, fails only when every one fails: a relay whose
// WebSocket port is taken would run without WebSocket, locking out every
// peer that can use nothing else, and say nothing.
//
// With ListenBestEffort an address that does not bind is a WARN line
// naming it and the error, and is listed by ListenFailures (status,
// health); the start still fails if none binds.
//
// /tcp/P and /tcp/P/ws are two listeners on one port here (the node's
// transports do not share a TCP listener), so configuring both is a bind
// failure too. A /tcp/0 or /udp/0 address binds whatever port is free.
func (n *Node) listen() error {
	if len(n.cfg.Listen) == 0 {
		return nil
	}
	sw, ok := n.host.Network().(*swarm.Swarm)
	if !ok {
		// Not libp2p's swarm: no way to listen on one address and learn
		// its own error, so at least say which were asked for.
		if err := n.host.Network().Listen(n.cfg.Listen...); err != nil {
			return fmt.Errorf("listen on %v: %w", n.cfg.Listen, err)
		}
		return nil
	}
	// In the swarm's own order: a transport that shares another's port
	// (WebTransport on QUIC's) must come after it.
	addrs := slices.Clone(n.cfg.Listen)
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
	if len(errs) == 0 {
		return nil
	}
	if !n.cfg.ListenBestEffort || len(errs) == len(addrs) {
		return errors.Join(errs...)
	}
	for _, err := range errs {
		n.log.Warn("listen address not bound; going on without it (best effort)", "err", err)
		n.unbound = append(n.unbound, err.Error())
	}
	return nil
}

// ListenFailures lists the configured listen addresses that did not bind,
// each with its error; only ListenBestEffort starts a node with any.
func (n *Node) ListenFailures() []string { return slices.Clone(n.unbound) }
