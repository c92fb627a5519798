package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node/messaging"
)

// members reaches the receiver through its relay circuit, as a node does.
// stale makes the next EnsureMember say "connected" without looking, as
// the node's fast path does for a connection whose relay died a moment
// ago and that libp2p has not yet seen close.
type members struct {
	h       host.Host
	relay   peer.ID
	circuit ma.Multiaddr
	stale   atomic.Bool
	calls   atomic.Int64
}

func (m *members) EnsureMember(ctx context.Context, p peer.ID) error {
	m.calls.Add(1)
	if m.stale.CompareAndSwap(true, false) {
		return nil
	}
	if m.h.Network().Connectedness(p) == network.Connected {
		return nil
	}
	if sw, ok := m.h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p)
		sw.Backoff().Clear(m.relay)
	}
	if err := m.h.Connect(ctx, peer.AddrInfo{ID: p, Addrs: []ma.Multiaddr{m.circuit}}); err != nil {
		return fmt.Errorf("%w: %v", messaging.ErrUnreachable, err)
	}
	return nil
}

func (m *members) IsMember(context.Context, peer.ID) bool { return true }

func newHost(t *testing.T, opts ...libp2p.Option) host.Host {
	t.Helper()
	h, err := libp2p.New(append([]libp2p.Option{libp2p.NoListenAddrs, libp2p.EnableRelay()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// relayAt starts a circuit relay (no limits) with key k on addr.
func relayAt(t *testing.T, k crypto.PrivKey, addr string) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.Identity(k), libp2p.ListenAddrStrings(addr), libp2p.DisableRelay())
	if err != nil {
		t.Fatalf("start relay on %s: %v", addr, err)
	}
	if _, err := relayv2.New(h, relayv2.WithInfiniteLimits()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// reserve makes b reachable through r, trying until the deadline.
func reserve(t *testing.T, b host.Host, r peer.AddrInfo) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := b.Connect(ctx, r)
		if err == nil {
			_, err = client.Reserve(ctx, b, r)
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reserve on relay: %v", err)
		}
		if sw, ok := b.Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(r.ID)
		}
		time.Sleep(50 * time.Millisecond) // a retry's pace, not a settle wait
	}
}

type setup struct {
	a, b    host.Host
	relayK  crypto.PrivKey
	relayAt string
	relay   host.Host
	am      *members
	sender  *messaging.Messenger
	got     <-chan messaging.Message
}

// newSetup joins sender a and receiver b through one relay, then stops the
// relay: no path is left between them.
func newSetup(t *testing.T) *setup {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &setup{relayK: k}
	s.relay = relayAt(t, k, "/ip4/127.0.0.1/tcp/0")
	s.relayAt = s.relay.Addrs()[0].String()
	s.a, s.b = newHost(t), newHost(t)
	ri := peer.AddrInfo{ID: s.relay.ID(), Addrs: s.relay.Addrs()}
	reserve(t, s.b, ri)
	circuit := ma.StringCast(fmt.Sprintf("%s/p2p/%s/p2p-circuit", s.relayAt, s.relay.ID()))
	s.am = &members{h: s.a, relay: s.relay.ID(), circuit: circuit}
	s.a.Peerstore().AddAddr(s.b.ID(), circuit, peerstore.PermanentAddrTTL)
	s.sender = messaging.New(s.a, s.am, nil)
	t.Cleanup(s.sender.Close)
	receiver := messaging.New(s.b, &members{h: s.b}, nil)
	t.Cleanup(receiver.Close)
	got, stop := receiver.Subscribe(8)
	t.Cleanup(stop)
	s.got = got
	s.relay.Close()
	deadline := time.Now().Add(10 * time.Second)
	for s.a.Network().Connectedness(s.b.ID()) == network.Connected ||
		s.b.Network().Connectedness(s.relay.ID()) == network.Connected {
		if time.Now().After(deadline) {
			t.Fatal("connections through the stopped relay still open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

type result struct {
	err error
	at  time.Time
}

func (s *setup) send(timeout time.Duration, data string) <-chan result {
	s.am.stale.Store(true)
	out := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := s.sender.Send(ctx, s.b.ID(), []byte(data))
		out <- result{err, time.Now()}
	}()
	return out
}

// A send that starts while the only path is down, its first stream open
// failing, is delivered once the relay is back within its timeout.
func TestSendWaitsForRelayBack(t *testing.T) {
	s := newSetup(t)
	done := s.send(30*time.Second, "hello")
	// Wait until the send has failed a path at least once and is retrying.
	deadline := time.Now().Add(10 * time.Second)
	for s.am.calls.Load() < 2 {
		select {
		case r := <-done:
			t.Fatalf("send gave up before its timeout: %v", r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("send did not try to reach the receiver again")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := relayAt(t, s.relayK, s.relayAt)
	reserve(t, s.b, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()})
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatalf("send failed: %v", res.err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("send did not return")
	}
	select {
	case m := <-s.got:
		if string(m.Data) != "hello" {
			t.Errorf("got %q", m.Data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("acknowledged message not delivered")
	}
}

// A send whose path never comes back fails at its timeout, not before.
func TestSendFailsAtTimeout(t *testing.T) {
	s := newSetup(t)
	const timeout = 2 * time.Second
	start := time.Now()
	res := <-s.send(timeout, "lost")
	if !errors.Is(res.err, messaging.ErrTimeout) {
		t.Fatalf("send: %v, want %v", res.err, messaging.ErrTimeout)
	}
	if took := res.at.Sub(start); took < timeout {
		t.Errorf("send gave up after %s, before its %s timeout: %v", took, timeout, res.err)
	}
}
