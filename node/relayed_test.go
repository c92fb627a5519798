package node_test

import (
	"context"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/book"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// Two private peers with only WebSocket and no listen address reach each
// other through a relay, and each books the other as a relayed member.
func TestPrivatePeersThroughRelay(t *testing.T) {
	r := nt.Relay(t)
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a := nt.Peer(t, relays)
	b := nt.Peer(t, relays)
	nt.Eventually(t, 10*time.Second, "both peers reserved", func() bool {
		return nt.Reserved(a, 1) && nt.Reserved(b, 1)
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	info, err := a.Connect(ctx, b.ID().String())
	if err != nil {
		t.Fatalf("connect a->b by peer ID: %v", err)
	}
	if info.State != book.StateMember {
		t.Fatalf("a sees b as %q, want member", info.State)
	}
	for _, pair := range []struct {
		self, other *node.Node
	}{{a, b}, {b, a}} {
		self, other := pair.self, pair.other
		nt.Eventually(t, 10*time.Second, "member with relayed path", func() bool {
			p, ok := self.Book().Get(other.ID())
			return ok && p.State == book.StateMember && p.Path == book.PathRelayed
		})
		p, _ := self.Book().Get(other.ID())
		if len(p.Relayed) == 0 {
			t.Errorf("%s: relayed book of %s is empty", self.ID(), other.ID())
		}
		if len(p.Direct) != 0 {
			t.Errorf("%s: direct book of %s = %v, want empty", self.ID(), other.ID(), p.Direct)
		}
		for _, s := range p.Relayed {
			if !book.IsRelayed(ma.StringCast(s)) {
				t.Errorf("non-relayed address %s in relayed book", s)
			}
		}
	}
	// The relay sees both as members reached directly.
	for _, n := range []*node.Node{a, b} {
		p, ok := r.Book().Get(n.ID())
		if !ok || p.State != book.StateMember || p.Path != book.PathDirect {
			t.Errorf("relay books %s as %+v, want direct member", n.ID(), p)
		}
	}
}

// A relay learns a peer's relayed addresses once the peer holds its
// reservation, though the handshake ran before it had any.
func TestRelayBooksPeersRelayedAddrs(t *testing.T) {
	r := nt.Relay(t)
	p := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r)})
	nt.Eventually(t, 10*time.Second, "reserved", func() bool { return nt.Reserved(p, 1) })
	nt.Eventually(t, 20*time.Second, "relay books the peer's relayed addresses", func() bool {
		info, ok := r.Book().Get(p.ID())
		return ok && len(info.Relayed) > 0 && len(info.Direct) == 0
	})
	for _, a := range p.Host().Addrs() {
		if book.IsRelayed(a) {
			return
		}
	}
	t.Errorf("host addresses %v advertise no relayed address", p.Host().Addrs())
}

// Peers reserved on two relays stay reachable when one relay stops: a
// sender whose connection went through the stopped relay gets through the
// other.
func TestFailoverToSecondRelay(t *testing.T) {
	r1, r2 := nt.Relay(t), nt.Relay(t)
	relays := []ma.Multiaddr{nt.WSAddr(t, r1), nt.WSAddr(t, r2)}
	a := nt.Peer(t, relays, nt.WithoutDHT())
	b := nt.Peer(t, relays, nt.WithoutDHT())
	nt.Eventually(t, 10*time.Second, "reserved on both relays", func() bool { return nt.Reserved(a, 2) && nt.Reserved(b, 2) })
	ch, cancel := b.Messages().Subscribe(8)
	defer cancel()
	send(t, a, b, []byte("one"))
	via := relayOfConn(t, a, b)
	first, second := r1, r2
	if via == r2.ID().String() {
		first, second = r2, r1
	}
	first.Close()
	nt.Eventually(t, 10*time.Second, "a and b notice", func() bool {
		return len(a.Reservations()) == 1 && len(b.Reservations()) == 1 &&
			len(a.Host().Network().ConnsToPeer(b.ID())) == 0
	})
	send(t, a, b, []byte("two"))
	if got := relayOfConn(t, a, b); got != second.ID().String() {
		t.Fatalf("second message went through %s, want the remaining relay %s", got, second.ID())
	}
	for _, want := range []string{"one", "two"} {
		select {
		case m := <-ch:
			if string(m.Data) != want {
				t.Fatalf("got %q, want %q", m.Data, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%q never arrived", want)
		}
	}
}

// relayOfConn returns the relay that a's connection to b goes through.
func relayOfConn(t *testing.T, a, b *node.Node) string {
	t.Helper()
	conns := a.Host().Network().ConnsToPeer(b.ID())
	if len(conns) != 1 {
		t.Fatalf("%d connections from a to b, want 1", len(conns))
	}
	before, _ := ma.SplitFunc(conns[0].RemoteMultiaddr(), func(c ma.Component) bool { return c.Code() == ma.P_CIRCUIT })
	id, err := before.ValueForProtocol(ma.P_P2P)
	if err != nil {
		t.Fatalf("connection %s is not relayed", conns[0].RemoteMultiaddr())
	}
	return id
}
