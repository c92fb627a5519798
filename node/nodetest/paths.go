package nodetest

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/book"
)

// RelayedPair starts a relay and two private peers that may move to a
// direct connection (WithDirect with a 300 ms grace), waits until both
// hold a reservation, and connects a to b through the relay: on return
// a and b are joined by a relayed connection only.
func RelayedPair(ctx context.Context, t testing.TB) (a, b *node.Node) {
	t.Helper()
	r := Relay(t)
	relays := []ma.Multiaddr{WSAddr(t, r)}
	a = Peer(t, relays, WithDirect(300*time.Millisecond))
	b = Peer(t, relays, WithDirect(300*time.Millisecond))
	Eventually(t, 10*time.Second, "both reserved", func() bool { return Reserved(a, 1) && Reserved(b, 1) })
	if _, err := a.ConnectPeer(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.RelayedAddrs()}); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	return a, b
}

// ConnectDirect dials b's direct addresses from a as a hole punch would
// (a forced direct dial, whatever connection exists) and fails t if that
// fails. With addrs, only those are dialled.
func ConnectDirect(ctx context.Context, t testing.TB, a, b *node.Node, addrs ...ma.Multiaddr) {
	t.Helper()
	if len(addrs) == 0 {
		addrs = b.DirectAddrs()
	}
	direct := network.WithForceDirectDial(ctx, "test: as a hole punch would")
	if err := a.Host().Connect(direct, peer.AddrInfo{ID: b.ID(), Addrs: addrs}); err != nil {
		t.Fatalf("direct connection: %v", err)
	}
}

// RelayedConns counts n's relayed connections to p.
func RelayedConns(n *node.Node, p peer.ID) int {
	k := 0
	for _, c := range n.Host().Network().ConnsToPeer(p) {
		if book.IsRelayed(c.RemoteMultiaddr()) {
			k++
		}
	}
	return k
}

// CloseListeners closes n's direct listeners: no new direct connection
// reaches it; its relayed address stays.
func CloseListeners(n *node.Node) {
	var direct []ma.Multiaddr
	for _, l := range n.Host().Network().ListenAddresses() {
		if !book.IsRelayed(l) {
			direct = append(direct, l)
		}
	}
	n.Host().Network().(interface{ ListenClose(...ma.Multiaddr) }).ListenClose(direct...)
}
