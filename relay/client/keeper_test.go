package client_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/book"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
	"github.com/overlay-net/overlay/relay/client"
)

// startRelayAt starts a public node with key listening on the given
// WebSocket address, retrying while the port is still held by a node that
// has just closed.
func startRelayAt(t *testing.T, key crypto.PrivKey, listen string) *node.Node {
	t.Helper()
	var n *node.Node
	var lastErr error
	nt.Eventually(t, 10*time.Second, "relay listening on "+listen, func() bool {
		cfg := node.DefaultConfig(protocol.RolePublic)
		cfg.Key, cfg.Logger = key, nt.Logger(t)
		cfg.Listen = []ma.Multiaddr{ma.StringCast(listen)}
		n, lastErr = node.New(cfg)
		if lastErr != nil {
			t.Logf("start relay: %v", lastErr)
		}
		return lastErr == nil
	})
	t.Cleanup(func() { n.Close() })
	return n
}

func idOf(t *testing.T, k crypto.PrivKey) peer.ID {
	t.Helper()
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// reachThrough checks that a fresh peer on relays reaches target through
// the relay and that both book each other as relayed members.
func reachThrough(t *testing.T, relays []ma.Multiaddr, target *node.Node) {
	t.Helper()
	b := nt.Peer(t, relays)
	nt.Eventually(t, 10*time.Second, "second peer reserved", func() bool { return nt.Reserved(b, 1) })
	info, err := b.Connect(nt.Context(t, 10*time.Second), target.ID().String())
	if err != nil {
		t.Fatalf("reach %s through the relay: %v", target.ID(), err)
	}
	if info.State != book.StateMember || info.Path != book.PathRelayed {
		t.Fatalf("reached %s as %+v, want a relayed member", target.ID(), info)
	}
	nt.Eventually(t, 10*time.Second, "target books the peer as a relayed member", func() bool {
		p, ok := target.Book().Get(b.ID())
		return ok && p.State == book.StateMember && p.Path == book.PathRelayed
	})
}

// A reservation with a short TTL is renewed before it lapses, so the peer
// stays reachable through the relay well past the TTL.
func TestReservationRenewed(t *testing.T) {
	const ttl = 3 * time.Second
	r := nt.Relay(t, nt.WithRelayConfig(func(c *relay.Config) { c.ReservationTTL = ttl }))
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a := nt.Peer(t, relays)
	nt.Eventually(t, 10*time.Second, "reserved", func() bool { return nt.Reserved(a, 1) })

	start := time.Now()
	var last time.Time
	advances := -1 // the first sighting is not an advance
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for time.Since(start) < 2*ttl+time.Second {
		rs := a.Reservations()
		now := time.Now()
		if len(rs) != 1 {
			t.Fatalf("after %s: %d reservations, want 1", now.Sub(start).Round(time.Millisecond), len(rs))
		}
		if e := rs[0].Expires; !e.After(now) {
			t.Fatalf("after %s: reservation expired at %s, not renewed", now.Sub(start).Round(time.Millisecond), e)
		} else if e.After(last) {
			advances++
			last = e
		}
		<-tick.C
	}
	t.Logf("expiry advanced %d times; last expiry %s", advances, last.Format(time.RFC3339))
	if advances < 2 {
		t.Errorf("expiry advanced %d times in %s with TTL %s, want at least 2", advances, 2*ttl+time.Second, ttl)
	}
	reachThrough(t, relays, a)
}

// A peer loses its reservation when the relay goes away and takes a new one,
// without restarting, when a relay with the same identity comes back at the
// same address.
func TestRelayRestart(t *testing.T) {
	key := nt.Key(t)
	listen := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/ws", nt.FreePort(t))
	relays := []ma.Multiaddr{ma.StringCast(listen + "/p2p/" + idOf(t, key).String())}

	r1 := startRelayAt(t, key, listen)
	a := nt.Peer(t, relays)
	nt.Eventually(t, 10*time.Second, "reserved on the first relay", func() bool { return nt.Reserved(a, 1) })

	if err := r1.Close(); err != nil {
		t.Fatalf("close relay: %v", err)
	}
	nt.Eventually(t, 10*time.Second, "reservation dropped", func() bool { return len(a.Reservations()) == 0 })
	if n := len(a.RelayedAddrs()); n != 0 {
		t.Errorf("%d relayed addresses announced without a reservation", n)
	}

	r2 := startRelayAt(t, key, listen)
	nt.Eventually(t, 10*time.Second, "reserved on the restarted relay", func() bool { return nt.Reserved(a, 1) })
	if rs := a.Reservations(); rs[0].Relay != r2.ID() || len(a.RelayedAddrs()) == 0 {
		t.Errorf("reservations %+v, relayed addrs %v", rs, a.RelayedAddrs())
	}
	reachThrough(t, relays, a)
}

// A private peer reserves on a stock libp2p relay, which does not speak the
// overlay handshake, and books it as foreign.
func TestStockRelay(t *testing.T) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0/ws"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	rc := circuit.DefaultResources()
	rc.Limit = nil // see shared/NOTES.md: WithResources replaces Limit too
	svc, err := circuit.New(h, circuit.WithResources(rc),
		circuit.WithReservationAddressFilter(func(ma.Multiaddr) bool { return true }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	var relays []ma.Multiaddr
	for _, a := range h.Addrs() {
		relays = append(relays, a.Encapsulate(ma.StringCast("/p2p/"+h.ID().String())))
	}

	a := nt.Peer(t, relays)
	nt.Eventually(t, 10*time.Second, "reserved on the stock relay", func() bool { return nt.Reserved(a, 1) })
	if rs := a.Reservations(); rs[0].Relay != h.ID() || len(rs[0].Addrs) == 0 {
		t.Errorf("reservation %+v, want one on %s with relayed addresses", rs[0], h.ID())
	}
	if s, ok := a.WaitVerdict(nt.Context(t, 10*time.Second), h.ID()); !ok || s != book.StateForeign {
		t.Fatalf("verdict on the stock relay = %q, %v; want foreign", s, ok)
	}
	p, ok := a.Book().Get(h.ID())
	if !ok || p.State != book.StateForeign || p.Reason == "" {
		t.Errorf("stock relay booked as %+v, want foreign with a reason", p)
	}
	if !ok || len(p.Direct) == 0 {
		t.Errorf("stock relay booked without its direct address: %+v", p)
	}
	// Members still reach each other through it.
	reachThrough(t, relays, a)
}

// A peer whose relay is down keeps retrying without giving up or stopping,
// and reserves as soon as the relay is up.
func TestKeeperWaitsForRelay(t *testing.T) {
	key := nt.Key(t)
	listen := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/ws", nt.FreePort(t))
	relays := []ma.Multiaddr{ma.StringCast(listen + "/p2p/" + idOf(t, key).String())}

	var log nt.LogBuffer
	a := nt.Peer(t, relays, nt.WithLogBuffer(&log))
	nt.Eventually(t, 10*time.Second, "three failed attempts", func() bool {
		if n := len(a.Reservations()); n != 0 {
			t.Fatalf("%d reservations on a relay that is down", n)
		}
		return strings.Count(log.String(), "relay attempt failed") >= 2
	})
	// One warning for the outage, not one per attempt.
	if n := strings.Count(log.String(), "relay unreachable, retrying"); n != 1 {
		t.Errorf("%d warnings for one outage, want 1:\n%s", n, log.String())
	}
	// The node is still up and serving: it joins another node.
	other := nt.Relay(t)
	if _, err := a.Connect(nt.Context(t, 10*time.Second), nt.WSAddr(t, other).String()); err != nil {
		t.Fatalf("node stopped working while its relay was down: %v", err)
	}

	r := startRelayAt(t, key, listen)
	nt.Eventually(t, 30*time.Second, "reserved once the relay is up", func() bool { return nt.Reserved(a, 1) })
	if rs := a.Reservations(); rs[0].Relay != r.ID() {
		t.Errorf("reservation on %s, want %s", rs[0].Relay, r.ID())
	}
	reachThrough(t, relays, a)
}

// After a relay restart, a peer that held a reservation on it reserves again
// right after it listens, not after a backoff that grew during the outage.
func TestReserveAgainRightAfterRestart(t *testing.T) {
	key := nt.Key(t)
	listen := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/ws", nt.FreePort(t))
	relays := []ma.Multiaddr{ma.StringCast(listen + "/p2p/" + idOf(t, key).String())}
	r1 := startRelayAt(t, key, listen)
	d := client.DefaultConfig()
	a := nt.Peer(t, relays, nt.WithKeeper(func(k *client.Config) {
		k.MinBackoff, k.MaxBackoff, k.FastRetry, k.FastWindow = d.MinBackoff, d.MaxBackoff, d.FastRetry, d.FastWindow
	}))
	nt.Eventually(t, 10*time.Second, "reserved", func() bool { return nt.Reserved(a, 1) })
	sub, err := a.Host().EventBus().Subscribe(new(events.EvtRelay), eventbus.BufSize(64))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	// Four failures: plain backoff from 1 s would now wait 8 s.
	failures := 0
	deadline := time.After(20 * time.Second)
	for failures < 4 {
		select {
		case e := <-sub.Out():
			if ev := e.(events.EvtRelay); ev.State == events.RelayUnreachable {
				failures++
			}
		case <-deadline:
			t.Fatalf("%d failed attempts in 20 s while the relay was down", failures)
		}
	}
	startRelayAt(t, key, listen)
	listening := time.Now()
	nt.Eventually(t, 10*time.Second, "reserved again", func() bool { return nt.Reserved(a, 1) })
	took := time.Since(listening)
	t.Logf("reserved again %s after the relay listened (retry every %s)", took.Round(time.Millisecond), d.FastRetry)
	if bound := 3 * time.Second; took > bound {
		t.Errorf("reserved again only %s after the relay listened, want within %s", took, bound)
	}
}

// refuseFirstConn refuses reservations over the first connection it sees
// and allows them over any later one: a relay that took the peer for a
// stranger on one connection.
type refuseFirstConn struct {
	mu    sync.Mutex
	first ma.Multiaddr
}

func (a *refuseFirstConn) AllowReserve(_ peer.ID, addr ma.Multiaddr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.first == nil {
		a.first = addr
	}
	return !a.first.Equal(addr)
}

func (a *refuseFirstConn) AllowConnect(peer.ID, ma.Multiaddr, peer.ID) bool { return true }

// A relay that refuses a reservation as not permitted is reconnected to,
// not asked again over the connection it judged this node on.
func TestKeeperReconnectsAfterPermissionDenied(t *testing.T) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0/ws"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	rc := circuit.DefaultResources()
	rc.Limit = nil
	acl := &refuseFirstConn{}
	svc, err := circuit.New(h, circuit.WithResources(rc), circuit.WithACL(acl),
		circuit.WithReservationAddressFilter(func(ma.Multiaddr) bool { return true }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	relays := []ma.Multiaddr{h.Addrs()[0].Encapsulate(ma.StringCast("/p2p/" + h.ID().String()))}
	a := nt.Peer(t, relays, nt.WithKeeper(func(c *client.Config) {
		c.MinBackoff, c.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
	}))
	nt.Eventually(t, 10*time.Second, "reserved over a second connection", func() bool { return nt.Reserved(a, 1) })
	acl.mu.Lock()
	defer acl.mu.Unlock()
	if acl.first == nil {
		t.Fatal("the relay saw no reservation attempt before the one it allowed")
	}
}
