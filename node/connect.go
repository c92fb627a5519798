package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/dial"
	"github.com/overlay-net/overlay/node/messaging"
	"github.com/overlay-net/overlay/relay/client"
)

// Errors of Connect and of everything that reaches a peer by ID.
var (
	ErrNoAddress = dial.ErrNoAddress
	ErrRejected  = errors.New("handshake refused")
	ErrForeign   = errors.New("peer is not an overlay member")
	// ErrSelf means a node was asked to reach itself.
	ErrSelf = dial.ErrSelf
)

// Connect reaches target and waits for its handshake. A bare peer ID is
// found as dial.Dialer.Reach describes.
func (n *Node) Connect(ctx context.Context, target string) (book.PeerInfo, error) {
	ai, err := n.parseTarget(target)
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
		return book.PeerInfo{}, dial.ExplainPSK(err, len(n.cfg.PSK) > 0)
	}
	return n.awaitMember(ctx, ai.ID)
}

// reach makes sure a connection to ai exists (node/dial).
func (n *Node) reach(ctx context.Context, ai peer.AddrInfo) error {
	d := dial.Dialer{Host: n.host, Book: n.book, Keeper: n.keeper.Load, Logger: n.log}
	if n.dht != nil {
		d.FindPeer = n.FindPeer
	}
	return d.Reach(ctx, ai)
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
