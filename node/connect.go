package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/messaging"
	"github.com/overlay-net/overlay/relay/client"
)

// Errors of Connect and of everything that reaches a peer by ID.
var (
	ErrNoAddress = errors.New("no known address")
	ErrRejected  = errors.New("handshake refused")
	ErrForeign   = errors.New("peer is not an overlay member")
)

// ParseTarget reads a peer ID or a multiaddr ending in /p2p/<peer ID>.
func ParseTarget(s string) (peer.AddrInfo, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "/") {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return peer.AddrInfo{}, fmt.Errorf("parse multiaddr %q: %w", s, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return peer.AddrInfo{}, fmt.Errorf("multiaddr %q must end in /p2p/<peer ID>: %w", s, err)
		}
		return *ai, nil
	}
	id, err := peer.Decode(s)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("parse peer ID %q: %w", s, err)
	}
	return peer.AddrInfo{ID: id}, nil
}

// Connect reaches target and waits for its handshake. A bare peer ID is
// found as reach describes.
func (n *Node) Connect(ctx context.Context, target string) (book.PeerInfo, error) {
	ai, err := ParseTarget(target)
	if err != nil {
		return book.PeerInfo{}, err
	}
	return n.ConnectPeer(ctx, ai)
}

// ConnectPeer is Connect with a parsed target.
func (n *Node) ConnectPeer(ctx context.Context, ai peer.AddrInfo) (book.PeerInfo, error) {
	if err := n.reach(ctx, ai); err != nil {
		if refused := n.relayRefusals(); refused != "" {
			err = fmt.Errorf("%w (%s)", err, refused)
		}
		return book.PeerInfo{}, n.explainPSK(err)
	}
	return n.awaitMember(ctx, ai.ID)
}

// ErrSelf means a node was asked to reach itself.
var ErrSelf = errors.New("that is this node's own peer ID")

// reach makes sure a connection to ai exists, finding addresses when it has
// none: the peerstore, then the peer book (an earlier run), then the DHT,
// then the peer's relayed address through each of this node's relays. When
// the known addresses fail (the peer moved to another relay), the DHT is
// asked for fresh ones, and last the node's own relays are tried.
func (n *Node) reach(ctx context.Context, ai peer.AddrInfo) error {
	if ai.ID == n.ID() {
		return fmt.Errorf("%w: %s", ErrSelf, ai.ID)
	}
	if n.host.Network().Connectedness(ai.ID) == network.Connected {
		return nil
	}
	known := func() bool { return len(ai.Addrs) > 0 || len(n.host.Peerstore().Addrs(ai.ID)) > 0 }
	if !known() {
		info, _ := n.book.Get(ai.ID)
		ai.Addrs = info.Addrs()
	}
	looked := false
	if !known() && n.dht != nil {
		looked = true
		if found, err := n.FindPeer(ctx, ai.ID); err == nil {
			ai.Addrs = found.Addrs
		} else {
			n.log.Debug("DHT lookup", "peer", ai.ID, "err", err)
		}
	}
	viaOwn := false
	if k := n.keeper.Load(); !known() && k != nil {
		ai.Addrs, viaOwn = k.CircuitAddrs(), true
	}
	if !known() {
		return fmt.Errorf("%w for %s and no relay to reach it through", ErrNoAddress, ai.ID)
	}
	err := n.dial(ctx, ai)
	if err == nil || ctx.Err() != nil {
		return err
	}
	if !looked && n.dht != nil {
		found, ferr := n.FindPeer(ctx, ai.ID)
		if ferr == nil {
			derr := n.dial(ctx, found)
			if derr == nil {
				return nil
			}
			err = fmt.Errorf("%w (and at the addresses the DHT gave: %v)", err, derr)
		}
	}
	// Last, through this node's own relays: the addresses known may be
	// stale or of no transport this node has (a WebSocket-only node and a
	// peer record published before the peer held a reservation).
	if k := n.keeper.Load(); k != nil && !viaOwn && ctx.Err() == nil {
		if cerr := n.dial(ctx, peer.AddrInfo{ID: ai.ID, Addrs: k.CircuitAddrs()}); cerr == nil {
			return nil
		}
	}
	return err
}

// awaitMember waits for p's handshake and turns a refusal into an error
// that says who refused whom.
func (n *Node) awaitMember(ctx context.Context, p peer.ID) (book.PeerInfo, error) {
	state, ok := n.verdicts.Wait(ctx, p)
	info, _ := n.book.Get(p)
	switch {
	case !ok:
		return info, fmt.Errorf("handshake with %s: %w", p, ctx.Err())
	case state == book.StateRejected && info.RefusedBy == book.RefusedByPeer:
		return info, fmt.Errorf("%w: %s refused this node: %s", ErrRejected, p, info.Reason)
	case state == book.StateRejected:
		return info, fmt.Errorf("%w: this node refused %s: %s", ErrRejected, p, info.Reason)
	case state == book.StateForeign:
		return info, fmt.Errorf("%w: %s", ErrForeign, info.Reason)
	}
	return info, nil
}

// AwaitHandshake waits for a relay's verdict on this node, for the keeper:
// nil for a member or a stock relay, an error wrapping client.ErrRefused
// when the relay refused this node.
func (n *Node) AwaitHandshake(ctx context.Context, p peer.ID) error {
	state, ok := n.verdicts.Wait(ctx, p)
	if !ok {
		return fmt.Errorf("handshake: %w", ctx.Err())
	}
	if state != book.StateRejected {
		return nil
	}
	info, _ := n.book.Get(p)
	if info.RefusedBy == book.RefusedBySelf {
		return fmt.Errorf("handshake: this node refused the relay: %s", info.Reason)
	}
	return fmt.Errorf("%w: %s", client.ErrRefused, info.Reason)
}

// EnsureMember makes sure a connection to the member p exists, for the
// messenger, and words why not in messaging's terms.
func (n *Node) EnsureMember(ctx context.Context, to peer.ID) error {
	if to == n.ID() {
		return fmt.Errorf("%w (%s)", messaging.ErrSelf, to)
	}
	// The common case, on every message: a member already connected.
	if n.verdicts.Get(to) == book.StateMember && n.host.Network().Connectedness(to) == network.Connected {
		return nil
	}
	_, known := n.book.Get(to)
	_, err := n.ConnectPeer(ctx, peer.AddrInfo{ID: to})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrRejected), errors.Is(err, ErrForeign):
		return fmt.Errorf("%w: %s: %v", messaging.ErrNotMember, to, err)
	case !known:
		return fmt.Errorf("%w %s: %v", messaging.ErrUnknownPeer, to, err)
	case ctx.Err() != nil:
		return fmt.Errorf("%w: reaching %s: %v", messaging.ErrTimeout, to, err)
	}
	return fmt.Errorf("%w: %s: %v", messaging.ErrUnreachable, to, err)
}

// dial connects to ai now. The swarm's dial backoff (seconds to minutes
// after a failure) is cleared first, for the peer and for our relays: a
// caller asking now, after a relay came back, must not be told "dial backoff".
func (n *Node) dial(ctx context.Context, ai peer.AddrInfo) error {
	if sw, ok := n.host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(ai.ID)
		// A relayed dial dials the relay first: its backoff counts too.
		if k := n.keeper.Load(); k != nil {
			for _, r := range k.Relays() {
				sw.Backoff().Clear(r.ID)
			}
		}
	}
	n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
	restore := n.hideDeadCircuits(ai.ID)
	defer restore()
	if err := n.host.Connect(ctx, peer.AddrInfo{ID: ai.ID}); err != nil {
		return fmt.Errorf("connect to %s: %w", ai.ID, err)
	}
	return nil
}

// hideDeadCircuits removes from the peerstore, for the length of one dial,
// p's relayed addresses through those of our own relays we hold no
// reservation on now (the keeper cannot reach them), as long as another
// address is left. libp2p would dial them alongside the good ones, and a
// dead relay costs a relay dial timeout (5 s) before the dial settles. The
// returned function puts them back.
func (n *Node) hideDeadCircuits(p peer.ID) (restore func()) {
	k := n.keeper.Load()
	if k == nil {
		return func() {}
	}
	ps := n.host.Peerstore()
	var hide []ma.Multiaddr
	addrs := ps.Addrs(p)
	for _, a := range addrs {
		if k.ThroughDeadRelay(a) {
			hide = append(hide, a)
		}
	}
	if len(hide) == 0 || len(hide) == len(addrs) {
		return func() {}
	}
	for _, a := range hide {
		ps.SetAddr(p, a, 0)
	}
	return func() { ps.AddAddrs(p, hide, peerstore.TempAddrTTL) }
}

// explainPSK words a failed security handshake for private networks: with
// different pre-shared keys (or one side without) libp2p sees only garbage
// or silence, and says "failed to negotiate security protocol".
func (n *Node) explainPSK(err error) error {
	if !strings.Contains(err.Error(), "failed to negotiate security protocol") {
		return err
	}
	if len(n.cfg.PSK) > 0 {
		return fmt.Errorf("%w (this node is on a private network: the peer must hold the same pre-shared key, --psk)", err)
	}
	return fmt.Errorf("%w (the peer may be on a private network: reaching it needs its pre-shared key, --psk)", err)
}
