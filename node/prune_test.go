package node_test

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node/book"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// A stranger that came and went leaves nothing behind once its time is up:
// not in the peerstore after the verdict's linger, not in the book after the
// stranger TTL; a member that came and went stays in the book.
func TestStrangersLeaveNoTrace(t *testing.T) {
	r := nt.Relay(t)
	stranger, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	ctx := nt.Context(t, 20*time.Second)
	if err := stranger.Connect(ctx, peer.AddrInfo{ID: r.ID(), Addrs: r.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	member := nt.Relay(t)
	if _, err := member.Connect(ctx, nt.TCPAddr(t, r).String()); err != nil {
		t.Fatal(err)
	}
	nt.Eventually(t, 30*time.Second, "stranger booked foreign", func() bool {
		p, ok := r.Book().Get(stranger.ID())
		return ok && p.State == book.StateForeign
	})
	stranger.Close()
	member.Close()
	nt.Eventually(t, 10*time.Second, "both gone", func() bool {
		return r.Host().Network().Connectedness(stranger.ID()) != network.Connected &&
			r.Host().Network().Connectedness(member.ID()) != network.Connected
	})
	if protos, _ := r.Host().Peerstore().GetProtocols(stranger.ID()); len(protos) == 0 {
		t.Fatal("the test needs the stranger's protocols in the peerstore first")
	}

	r.Prune(time.Now().Add(2 * time.Minute))
	if protos, _ := r.Host().Peerstore().GetProtocols(stranger.ID()); len(protos) != 0 {
		t.Errorf("stranger still in the peerstore after its verdict expired: %v", protos)
	}
	if _, ok := r.Book().Get(stranger.ID()); !ok {
		t.Errorf("stranger left the book before its TTL")
	}
	r.Prune(time.Now().Add(book.DefaultPolicy().StrangerTTL + time.Hour))
	if _, ok := r.Book().Get(stranger.ID()); ok {
		t.Errorf("stranger still in the book after its TTL")
	}
	if p, ok := r.Book().Get(member.ID()); !ok || p.State != book.StateMember {
		t.Errorf("member evicted: %+v, %v", p, ok)
	}
}
