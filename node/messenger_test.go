package node_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/messaging"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
)

// relayedPair starts a relay and two WebSocket-only private peers reserved
// on it.
func relayedPair(t testing.TB, opts ...nt.Option) (r, a, b *node.Node) {
	t.Helper()
	r = nt.Relay(t, opts...)
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a = nt.Peer(t, relays)
	b = nt.Peer(t, relays)
	nt.Eventually(t, 10*time.Second, "both peers reserved", func() bool {
		return nt.Reserved(a, 1) && nt.Reserved(b, 1)
	})
	return r, a, b
}

func send(t testing.TB, from, to *node.Node, data []byte) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rtt, err := from.Messages().Send(ctx, to.ID(), data)
	if err != nil {
		t.Fatalf("send %d bytes: %v", len(data), err)
	}
	return rtt
}

// expect reads n messages from ch and checks they come from sender, in
// order, each once, with the given payloads.
func expect(t *testing.T, ch <-chan messaging.Message, from *node.Node, want [][]byte) {
	t.Helper()
	var last uint64
	for i, w := range want {
		select {
		case m := <-ch:
			if m.From != from.ID() {
				t.Fatalf("message %d from %s, want %s", i, m.From, from.ID())
			}
			if m.Seq <= last {
				t.Fatalf("message %d has seq %d after %d: out of order or repeated", i, m.Seq, last)
			}
			last = m.Seq
			if !bytes.Equal(m.Data, w) {
				t.Fatalf("message %d: %d bytes, want %d (content differs)", i, len(m.Data), len(w))
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("message %d of %d never arrived", i, len(want))
		}
	}
	select {
	case m := <-ch:
		t.Fatalf("unexpected extra message seq %d", m.Seq)
	default:
	}
}

func TestMessagesThroughRelayInOrder(t *testing.T) {
	_, a, b := relayedPair(t)
	ch, cancel := b.Messages().Subscribe(64)
	defer cancel()
	var want [][]byte
	for i := range 50 {
		d := []byte{byte(i), 'x'}
		want = append(want, d)
		send(t, a, b, d)
	}
	expect(t, ch, a, want)
	if p, _ := a.Book().Get(b.ID()); p.Path != book.PathRelayed {
		t.Errorf("path %q, want relayed", p.Path)
	}
	if got := len(b.Messages().Inbox(0)); got != 50 {
		t.Errorf("inbox holds %d messages, want 50", got)
	}
}

// Stock relays cut a circuit at 128 KiB: 4 MiB of 1 KiB messages and one
// 1 MiB message must all arrive.
func TestRelayCarriesMegabytes(t *testing.T) {
	_, a, b := relayedPair(t)
	ch, cancel := b.Messages().Subscribe(5000)
	defer cancel()
	var want [][]byte
	for i := range 4096 {
		d := bytes.Repeat([]byte{byte(i)}, 1024)
		want = append(want, d)
		send(t, a, b, d)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), protocol.MaxMessageSize/16)
	want = append(want, big)
	send(t, a, b, big)
	expect(t, ch, a, want)
}

func TestSendErrors(t *testing.T) {
	r, a, b := relayedPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := a.Messages().Send(ctx, b.ID(), make([]byte, protocol.MaxMessageSize+1))
	if !errors.Is(err, protocol.ErrTooLarge) {
		t.Errorf("oversized send: %v, want ErrTooLarge", err)
	}
	_, err = a.Messages().Send(ctx, nt.Relay(t).ID(), []byte("hi"))
	if !errors.Is(err, messaging.ErrUnknownPeer) {
		t.Errorf("send to unknown peer: %v, want ErrUnknownPeer", err)
	}
	other := nt.Relay(t, nt.WithNetwork("other"))
	if _, err := r.Connect(ctx, nt.TCPAddr(t, other).String()); err == nil {
		t.Fatal("connect across networks succeeded")
	}
	_, err = r.Messages().Send(ctx, other.ID(), []byte("hi"))
	if !errors.Is(err, messaging.ErrNotMember) {
		t.Errorf("send to rejected peer: %v, want ErrNotMember", err)
	}
}

// A send with a short timeout returns on time while an earlier send to the
// same peer is stuck writing (the receiver reads nothing): no lock is held
// across network I/O beyond the caller's context.
func TestShortSendNotBlockedByStuckSend(t *testing.T) {
	a, b := nt.Relay(t), nt.Relay(t)
	if _, err := a.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, b).String()); err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	b.Host().SetStreamHandler(protocol.MessageID, func(s network.Stream) {
		opened <- struct{}{}
		<-release // never read: the sender's flow-control window fills
		s.Reset()
	})
	stuck := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := a.Messages().Send(ctx, b.ID(), make([]byte, protocol.MaxMessageSize))
		stuck <- err
	}()
	select {
	case <-opened:
	case <-time.After(10 * time.Second):
		t.Fatal("the first send never opened its stream")
	}

	const timeout = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	_, err := a.Messages().Send(ctx, b.ID(), []byte("short"))
	took := time.Since(start)
	if !errors.Is(err, messaging.ErrTimeout) {
		t.Errorf("short send: %v, want ErrTimeout", err)
	}
	if took > timeout+2*time.Second {
		t.Errorf("short send with a %s timeout returned after %s", timeout, took)
	}
	select {
	case err := <-stuck:
		t.Fatalf("the stuck send returned early (%v): the test did not hold it", err)
	default:
	}
}
