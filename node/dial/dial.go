// Package dial finds a peer's addresses and connects to it: from the
// peerstore, the peer book, the DHT, and last through this node's own
// relays, hiding addresses through relays it knows to be dead. It decides
// nothing about membership: the handshake does that afterwards.
package dial

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/relay/client"
)

// Errors of Reach.
var (
	ErrNoAddress = errors.New("no known address")
	ErrSelf      = errors.New("that is this node's own peer ID")
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

// Dialer reaches peers for one node.
type Dialer struct {
	Host host.Host
	Book *book.Book
	// FindPeer looks a peer up in the DHT; nil when the node has none.
	FindPeer func(context.Context, peer.ID) (peer.AddrInfo, error)
	// Keeper returns the node's reservation keeper, nil when it has none.
	Keeper func() *client.Keeper
	Logger *slog.Logger
}

// Reach makes sure a connection to ai exists, finding addresses when it has
// none: the peerstore, then the peer book (an earlier run), then the DHT,
// then the peer's relayed address through each of this node's relays. When
// the known addresses fail (the peer moved to another relay), the DHT is
// asked for fresh ones, and last the node's own relays are tried.
func (d *Dialer) Reach(ctx context.Context, ai peer.AddrInfo) error {
	if ai.ID == d.Host.ID() {
		return fmt.Errorf("%w: %s", ErrSelf, ai.ID)
	}
	if d.Host.Network().Connectedness(ai.ID) == network.Connected {
		return nil
	}
	known := func() bool { return len(ai.Addrs) > 0 || len(d.Host.Peerstore().Addrs(ai.ID)) > 0 }
	if !known() {
		info, _ := d.Book.Get(ai.ID)
		ai.Addrs = info.Addrs()
	}
	looked := false
	if !known() && d.FindPeer != nil {
		looked = true
		if found, err := d.FindPeer(ctx, ai.ID); err == nil {
			ai.Addrs = found.Addrs
		} else if d.Logger != nil {
			d.Logger.Debug("DHT lookup", "peer", ai.ID, "err", err)
		}
	}
	viaOwn := false
	if k := d.Keeper(); !known() && k != nil {
		ai.Addrs, viaOwn = k.CircuitAddrs(), true
	}
	if !known() {
		return fmt.Errorf("%w for %s and no relay to reach it through", ErrNoAddress, ai.ID)
	}
	err := d.dial(ctx, ai)
	if err == nil || ctx.Err() != nil {
		return err
	}
	if !looked && d.FindPeer != nil {
		found, ferr := d.FindPeer(ctx, ai.ID)
		if ferr == nil {
			derr := d.dial(ctx, found)
			if derr == nil {
				return nil
			}
			err = fmt.Errorf("%w (and at the addresses the DHT gave: %v)", err, derr)
		}
	}
	// Last, through this node's own relays: the addresses known may be
	// stale or of no transport this node has (a WebSocket-only node and a
	// peer record published before the peer held a reservation).
	if k := d.Keeper(); k != nil && !viaOwn && ctx.Err() == nil {
		if cerr := d.dial(ctx, peer.AddrInfo{ID: ai.ID, Addrs: k.CircuitAddrs()}); cerr == nil {
			return nil
		}
	}
	return err
}

// dial connects to ai now. The swarm's dial backoff (seconds to minutes
// after a failure) is cleared first, for the peer and for our relays: a
// caller asking now, after a relay came back, must not be told "dial backoff".
func (d *Dialer) dial(ctx context.Context, ai peer.AddrInfo) error {
	if sw, ok := d.Host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(ai.ID)
		// A relayed dial dials the relay first: its backoff counts too.
		if k := d.Keeper(); k != nil {
			for _, r := range k.Relays() {
				sw.Backoff().Clear(r.ID)
			}
		}
	}
	d.Host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
	restore := d.hideDeadCircuits(ai.ID)
	defer restore()
	if err := d.Host.Connect(ctx, peer.AddrInfo{ID: ai.ID}); err != nil {
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
func (d *Dialer) hideDeadCircuits(p peer.ID) (restore func()) {
	k := d.Keeper()
	if k == nil {
		return func() {}
	}
	ps := d.Host.Peerstore()
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

// ExplainPSK words a failed security handshake for private networks: with
// different pre-shared keys (or one side without) libp2p sees only garbage
// or silence, and says "failed to negotiate security protocol". private
// says whether this node is on a private network.
func ExplainPSK(err error, private bool) error {
	if !strings.Contains(err.Error(), "failed to negotiate security protocol") {
		return err
	}
	if private {
		return fmt.Errorf("%w (this node is on a private network: the peer must hold the same pre-shared key, --psk)", err)
	}
	return fmt.Errorf("%w (the peer may be on a private network: reaching it needs its pre-shared key, --psk)", err)
}
