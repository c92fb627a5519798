package node_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/book"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// dhtNet is relays chained by bootstrap (each later relay knows only the
// first) and private peers, each reserved on one relay.
type dhtNet struct {
	relays []*node.Node
	peers  [][]*node.Node // peers[i] are reserved on relays[i]
}

func newDHTNet(t *testing.T, relays, perRelay int, opts ...nt.Option) *dhtNet {
	t.Helper()
	d := &dhtNet{}
	for i := range relays {
		ropts := opts
		if i > 0 {
			ropts = append(slices.Clone(opts), nt.WithBootstrap(nt.TCPAddr(t, d.relays[0])))
		}
		d.relays = append(d.relays, nt.Relay(t, ropts...))
	}
	for _, r := range d.relays {
		var ps []*node.Node
		for range perRelay {
			ps = append(ps, nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r)}, opts...))
		}
		d.peers = append(d.peers, ps)
	}
	for _, ps := range d.peers {
		for _, p := range ps {
			nt.Eventually(t, 20*time.Second, "peer reserved and published", func() bool {
				return nt.Reserved(p, 1) && p.Published() > 0
			})
		}
	}
	return d
}

func TestFindByPeerIDAcrossRelays(t *testing.T) {
	d := newDHTNet(t, 3, 3)
	// Relays 2 and 3 know only relay 1; they find each other through the DHT.
	r2, r3 := d.relays[1], d.relays[2]
	nt.Eventually(t, 20*time.Second, "relay 2 and 3 in each other's routing table", func() bool {
		return slices.Contains(r2.RoutingTable(), r3.ID()) && slices.Contains(r3.RoutingTable(), r2.ID())
	})

	from, to := d.peers[0][0], d.peers[2][0]
	if _, ok := from.Book().Get(to.ID()); ok {
		t.Fatal("sender knew the receiver before the lookup")
	}
	ch, cancel := to.Messages().Subscribe(4)
	defer cancel()
	send(t, from, to, []byte("found you"))
	select {
	case m := <-ch:
		if string(m.Data) != "found you" || m.From != from.ID() {
			t.Fatalf("got %q from %s", m.Data, m.From)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message never arrived")
	}
	p, _ := from.Book().Get(to.ID())
	if p.State != book.StateMember || p.Path != book.PathRelayed || len(p.Relayed) == 0 || len(p.Direct) != 0 {
		t.Fatalf("sender books receiver as %+v", p)
	}
	for _, a := range p.Relayed {
		if !strings.Contains(a, r3.ID().String()) {
			t.Errorf("relayed address %s is not through relay 3", a)
		}
	}
}

// The DHT's addresses land in the right book before any handshake.
func TestDHTAddressesBooked(t *testing.T) {
	d := newDHTNet(t, 2, 1)
	from, to := d.peers[0][0], d.peers[1][0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ai, err := from.FindPeer(ctx, to.ID())
	if err != nil {
		t.Fatal(err)
	}
	p, ok := from.Book().Get(to.ID())
	if !ok || p.State != book.StateDiscovered || len(p.Relayed) != len(ai.Addrs) || len(p.Direct) != 0 {
		t.Fatalf("after lookup of %v the book has %+v", ai.Addrs, p)
	}
	// A public node's record carries direct addresses.
	ai, err = from.FindPeer(ctx, d.relays[1].ID())
	if err != nil {
		t.Fatal(err)
	}
	p, _ = from.Book().Get(d.relays[1].ID())
	if len(p.Direct) == 0 || len(p.Relayed) != 0 {
		t.Fatalf("relay booked as %+v after lookup of %v", p, ai.Addrs)
	}
}

// A peer that restarts on another relay is found at its new address once it
// republishes, by a sender that still holds the old one.
func TestPeerMovesToAnotherRelay(t *testing.T) {
	d := newDHTNet(t, 3, 1)
	from := d.peers[0][0]
	key := nt.Key(t)
	moving := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, d.relays[2])}, nt.WithKey(key))
	nt.Eventually(t, 20*time.Second, "published", func() bool { return nt.Reserved(moving, 1) && moving.Published() > 0 })
	send(t, from, moving, []byte("at relay 3"))
	moving.Close()
	nt.Eventually(t, 10*time.Second, "sender sees it gone", func() bool {
		return len(from.Host().Network().ConnsToPeer(moving.ID())) == 0
	})

	moved := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, d.relays[1])}, nt.WithKey(key))
	nt.Eventually(t, 20*time.Second, "republished", func() bool { return nt.Reserved(moved, 1) && moved.Published() > 0 })
	send(t, from, moved, []byte("at relay 2"))
	conns := from.Host().Network().ConnsToPeer(moved.ID())
	if len(conns) == 0 || !strings.Contains(conns[0].RemoteMultiaddr().String(), d.relays[1].ID().String()) {
		t.Fatalf("connected through %v, want relay 2 %s", conns, d.relays[1].ID())
	}
}

// Two networks on the same hosts, even with a relay of one bootstrapping
// from the other, never see each other's records.
func TestNetworksDoNotMix(t *testing.T) {
	a := newDHTNet(t, 1, 1, nt.WithNetwork("alpha"))
	b := newDHTNet(t, 1, 1, nt.WithNetwork("beta"), nt.WithBootstrap(nt.TCPAddr(t, a.relays[0])))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if ai, err := b.peers[0][0].FindPeer(ctx, a.peers[0][0].ID()); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("beta found alpha's peer: %v, %v", ai, err)
	}
	if ai, err := a.peers[0][0].FindPeer(ctx, b.peers[0][0].ID()); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("alpha found beta's peer: %v, %v", ai, err)
	}
	if slices.Contains(a.relays[0].RoutingTable(), b.relays[0].ID()) || slices.Contains(b.relays[0].RoutingTable(), a.relays[0].ID()) {
		t.Error("the two networks' relays share a routing table entry")
	}
}
