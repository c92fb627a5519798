package node_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/messaging"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
)

// The scenario the project's predecessor failed: one message every 0.5 s
// over a relayed WebSocket link, for 30 s.
func TestMessagesEveryHalfSecondFor30s(t *testing.T) {
	t.Parallel()
	logs := &nt.LogRecorder{Level: slog.LevelError}
	r := nt.Relay(t, nt.WithLogger(logs.Logger()))
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a := nt.Peer(t, relays, nt.WithLogger(logs.Logger()))
	b := nt.Peer(t, relays, nt.WithLogger(logs.Logger()))
	nt.Eventually(t, 10*time.Second, "both reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
	ch, cancel := b.Messages().Subscribe(128)
	defer cancel()

	var want [][]byte
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for i := range 60 {
		d := fmt.Appendf(nil, "message %d", i)
		want = append(want, d)
		send(t, a, b, d)
		<-tick.C
	}
	expect(t, ch, a, want)
	if p, _ := a.Book().Get(b.ID()); p.Path != book.PathRelayed {
		t.Errorf("path %q, want relayed", p.Path)
	}
	if recs := logs.Records(); len(recs) > 0 {
		t.Errorf("logged at error level: %v", recs)
	}
}

// Stock relays cut a circuit after 2 minutes; an overlay relay must not.
func TestRelayedConnectionOutlivesTwoMinutes(t *testing.T) {
	t.Parallel()
	_, a, b := relayedPair(t)
	ch, cancel := b.Messages().Subscribe(64)
	defer cancel()
	send(t, a, b, []byte("first"))
	conns := a.Host().Network().ConnsToPeer(b.ID())
	if len(conns) != 1 || !book.IsRelayed(conns[0].RemoteMultiaddr()) {
		t.Fatalf("want one relayed connection, have %v", conns)
	}
	first := conns[0]
	want := [][]byte{[]byte("first")}
	deadline := time.Now().Add(2*time.Minute + 10*time.Second)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for i := 0; time.Now().Before(deadline); i++ {
		<-tick.C
		d := fmt.Appendf(nil, "at %d", i)
		want = append(want, d)
		send(t, a, b, d)
	}
	expect(t, ch, a, want)
	if first.IsClosed() {
		t.Fatal("the relayed connection was closed")
	}
	if now := a.Host().Network().ConnsToPeer(b.ID()); len(now) != 1 || now[0].ID() != first.ID() {
		t.Fatalf("connection replaced: had %s, now %v", first.ID(), now)
	}
}

// A relay restarted in the middle of a stream of messages: sends fail
// clearly while it is down, succeed after the peers reserve again, nothing
// is delivered twice, and no goroutine is left behind.
func TestRelayRestartDuringMessages(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		key := nt.Key(t)
		addr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/ws", nt.FreePort(t))
		r := nt.Relay(t, nt.WithKey(key), nt.WithListen(addr))
		relays := []ma.Multiaddr{nt.WSAddr(t, r)}
		a := nt.Peer(t, relays)
		b := nt.Peer(t, relays)
		defer a.Close()
		defer b.Close()
		nt.Eventually(t, 10*time.Second, "both reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
		ch, cancel := b.Messages().Subscribe(256)
		defer cancel()

		sent := 0
		for range 5 {
			send(t, a, b, []byte("before"))
			sent++
		}
		r.Close()
		nt.Eventually(t, 10*time.Second, "reservations dropped", func() bool {
			return len(a.Reservations()) == 0 && a.Host().Network().Connectedness(b.ID()) != network.Connected
		})
		ctx, cancelSend := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := a.Messages().Send(ctx, b.ID(), []byte("during"))
		cancelSend()
		if !errors.Is(err, messaging.ErrUnreachable) && !errors.Is(err, messaging.ErrTimeout) {
			t.Fatalf("send with the relay down: %v, want ErrUnreachable or ErrTimeout", err)
		}
		t.Logf("send during outage: %v", err)

		r2 := nt.Relay(t, nt.WithKey(key), nt.WithListen(addr))
		defer r2.Close()
		nt.Eventually(t, 20*time.Second, "both reserved again", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
		for range 5 {
			send(t, a, b, []byte("after"))
			sent++
		}
		var seqs []uint64
		for range sent {
			select {
			case m := <-ch:
				if string(m.Data) == "during" {
					t.Error("a message sent while the relay was down was delivered and reported failed")
				}
				seqs = append(seqs, m.Seq)
			case <-time.After(10 * time.Second):
				t.Fatalf("got %d of %d messages", len(seqs), sent)
			}
		}
		select {
		case m := <-ch:
			t.Fatalf("extra delivery: seq %d %q", m.Seq, m.Data)
		default:
		}
		if !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != len(seqs) {
			t.Fatalf("sequence numbers out of order or repeated: %v", seqs)
		}
		r2.Close()
	}()
	nt.Eventually(t, 15*time.Second, fmt.Sprintf("goroutines back to %d", before), func() bool {
		return runtime.NumGoroutine() <= before+2
	})
}

// Garbage on one message stream resets that stream only: the sender's
// other traffic to the same node goes on.
func TestGarbageOnMessageStream(t *testing.T) {
	_, a, b := relayedPair(t)
	send(t, a, b, []byte("hello"))
	cases := map[string][]byte{
		"unknown frame":     {0x7f, 0, 0, 0, 1, 'x'},
		"oversized frame":   {0x11, 0x40, 0, 0, 0},
		"data before open":  {0x11, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 'x'},
		"short open":        {0x10, 0, 0, 0, 2, 1, 2},
		"truncated payload": {0x10, 0, 0, 0, 8, 1},
	}
	for name, garbage := range cases {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := a.Host().NewStream(network.WithAllowLimitedConn(ctx, "test"), b.ID(), protocol.MessageID)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Reset()
			if _, err := s.Write(garbage); err != nil {
				t.Fatal(err)
			}
			if name == "truncated payload" {
				s.CloseWrite()
			}
			s.SetReadDeadline(time.Now().Add(protocol.MessageFrameTimeout + 5*time.Second))
			buf := make([]byte, 64)
			if _, err := s.Read(buf); err == nil {
				t.Fatal("stream still open after garbage")
			}
			send(t, a, b, []byte("still works"))
		})
	}
}
