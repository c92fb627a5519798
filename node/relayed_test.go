package node_test

import (
	"context"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
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
	if info.State != node.StateMember {
		t.Fatalf("a sees b as %q, want member", info.State)
	}
	for _, pair := range []struct {
		self, other *node.Node
	}{{a, b}, {b, a}} {
		self, other := pair.self, pair.other
		nt.Eventually(t, 10*time.Second, "member with relayed path", func() bool {
			p, ok := self.Book().Get(other.ID())
			return ok && p.State == node.StateMember && p.Path == node.PathRelayed
		})
		p, _ := self.Book().Get(other.ID())
		if len(p.Relayed) == 0 {
			t.Errorf("%s: relayed book of %s is empty", self.ID(), other.ID())
		}
		if len(p.Direct) != 0 {
			t.Errorf("%s: direct book of %s = %v, want empty", self.ID(), other.ID(), p.Direct)
		}
		for _, s := range p.Relayed {
			if !node.IsRelayed(ma.StringCast(s)) {
				t.Errorf("non-relayed address %s in relayed book", s)
			}
		}
	}
	// The relay sees both as members reached directly.
	for _, n := range []*node.Node{a, b} {
		p, ok := r.Book().Get(n.ID())
		if !ok || p.State != node.StateMember || p.Path != node.PathDirect {
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
		if node.IsRelayed(a) {
			return
		}
	}
	t.Errorf("host addresses %v advertise no relayed address", p.Host().Addrs())
}
