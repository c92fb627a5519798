package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/messaging"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// sender sends numbered messages from a to b one after another until
// stopped, recording every error the user would see.
type sender struct {
	acked atomic.Int64
	mu    sync.Mutex
	errs  []error
	stop  chan struct{}
	done  chan struct{}
}

func startSender(a *node.Node, to peer.ID) *sender {
	s := &sender{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for i := 1; ; i++ {
			select {
			case <-s.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := a.Messages().Send(ctx, to, fmt.Appendf(nil, "m %d", i))
			cancel()
			if err != nil {
				s.mu.Lock()
				s.errs = append(s.errs, fmt.Errorf("message %d: %w", i, err))
				s.mu.Unlock()
				continue
			}
			s.acked.Add(1)
		}
	}()
	return s
}

// awaitMore waits until n more messages than now are acknowledged.
func (s *sender) awaitMore(t *testing.T, n int64, what string) {
	t.Helper()
	want := s.acked.Load() + n
	nt.Eventually(t, 30*time.Second, what, func() bool { return s.acked.Load() >= want })
}

func (s *sender) finish() []error {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errs
}

func pathOf(n *node.Node, p peer.ID) book.Path {
	info, _ := n.Book().Get(p)
	return info.Path
}

// describeConns lists n's connections to p with the protocols of their
// open streams, for a failure message.
func describeConns(n *node.Node, p peer.ID) string {
	var b strings.Builder
	for _, c := range n.Host().Network().ConnsToPeer(p) {
		fmt.Fprintf(&b, "  %s %s closed=%v limited=%v streams:", c.Stat().Direction, c.RemoteMultiaddr(), c.IsClosed(), c.Stat().Limited)
		for _, st := range c.GetStreams() {
			fmt.Fprintf(&b, " %s(%s)", st.Protocol(), st.Stat().Direction)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Two peers talking through a relay get a direct connection (as a hole
// punch would give them): the message stream moves to it, the relayed
// connection closes once idle, and when the direct connection dies the
// messages go back through the relay. The sender sees no error through
// all of it, and the receiver gets every message once, in order.
func TestMessagesMoveToDirectAndBack(t *testing.T) {
	r := nt.Relay(t)
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	logA, logB := &nt.LogRecorder{Level: slog.LevelDebug}, &nt.LogRecorder{Level: slog.LevelDebug}
	a := nt.Peer(t, relays, nt.WithDirect(300*time.Millisecond), nt.WithLogger(logA.Logger()))
	b := nt.Peer(t, relays, nt.WithDirect(300*time.Millisecond), nt.WithLogger(logB.Logger()))
	nt.Eventually(t, 10*time.Second, "both reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("a logged:\n%s", strings.Join(logA.Records(), "\n"))
			t.Logf("b logged:\n%s", strings.Join(logB.Records(), "\n"))
		}
	})

	ctx := nt.Context(t, 60*time.Second)
	if _, err := a.ConnectPeer(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.RelayedAddrs()}); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	if got := pathOf(a, b.ID()); got != book.PathRelayed {
		t.Fatalf("path before the direct connection = %q, want relayed", got)
	}
	got := collect(t, b)
	s := startSender(a, b.ID())
	s.awaitMore(t, 20, "messages through the relay")

	nt.ConnectDirect(ctx, t, a, b)
	nt.Eventually(t, 10*time.Second, "path direct on both sides", func() bool {
		return pathOf(a, b.ID()) == book.PathDirect && pathOf(b, a.ID()) == book.PathDirect
	})
	s.awaitMore(t, 20, "messages over the direct connection")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("a's connections to b:\n%s", describeConns(a, b.ID()))
			t.Logf("b's connections to a:\n%s", describeConns(b, a.ID()))
		}
	})
	nt.Eventually(t, 10*time.Second, "relayed connection closed once idle", func() bool {
		return nt.RelayedConns(a, b.ID()) == 0 && nt.RelayedConns(b, a.ID()) == 0
	})
	s.awaitMore(t, 20, "messages with the relayed connection gone")

	// The direct path dies for good: b stops listening, the connection drops.
	nt.CloseListeners(b)
	for _, c := range a.Host().Network().ConnsToPeer(b.ID()) {
		_ = c.Close()
	}
	s.awaitMore(t, 20, "messages back through the relay")
	if got := pathOf(a, b.ID()); got != book.PathRelayed {
		t.Errorf("path after the direct connection died = %q, want relayed", got)
	}
	errs := s.finish()
	for _, err := range errs {
		t.Errorf("sender saw: %v", err)
	}
	checkOnceInOrder(t, got(), a.ID(), s.acked.Load())
}

// collect gathers every message b receives from now on; the returned
// function stops collecting and returns them.
func collect(t *testing.T, b *node.Node) func() []messaging.Message {
	ch, stop := b.Messages().Subscribe(64)
	var msgs []messaging.Message
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-ch:
				msgs = append(msgs, m)
			case <-quit:
				return
			}
		}
	}()
	var once sync.Once
	finish := func() []messaging.Message {
		once.Do(func() {
			stop()
			close(quit)
			<-done
			for len(ch) > 0 {
				msgs = append(msgs, <-ch)
			}
		})
		return msgs
	}
	t.Cleanup(func() { finish() })
	return finish
}

// checkOnceInOrder asserts that msgs hold messages "m 1" to "m n"
// from a, each once, in order (a message sent but not acknowledged when
// the sender stopped may follow).
func checkOnceInOrder(t *testing.T, msgs []messaging.Message, from peer.ID, acked int64) {
	t.Helper()
	want := 1
	for _, m := range msgs {
		if m.From != from {
			continue
		}
		var k int
		if _, err := fmt.Sscanf(strings.TrimSpace(string(m.Data)), "m %d", &k); err != nil {
			t.Fatalf("unexpected message %q", m.Data)
		}
		if k != want {
			t.Fatalf("inbox: got message %d, want %d (lost, repeated or reordered)", k, want)
		}
		want++
	}
	if got := int64(want - 1); got < acked {
		t.Fatalf("inbox holds %d messages, %d were acknowledged", got, acked)
	}
}

// A direct path that dies silently (a NAT mapping gone: no reset, no
// error, packets just vanish) does not hold messages until the transport's
// idle timeout: the stalled connection is probed, closed, and the messages
// go through the relay, with no error for the sender.
func TestMessagesLeaveSilentlyDeadPath(t *testing.T) {
	ctx := nt.Context(t, 60*time.Second)
	a, b := nt.RelayedPair(ctx, t)
	got := collect(t, b)
	s := startSender(a, b.ID())
	s.awaitMore(t, 10, "messages through the relay")

	hole := newBlackhole(t, b.DirectAddrs()[0])
	// Connect dials every address a knows for b: only the blackhole's.
	a.Host().Peerstore().ClearAddrs(b.ID())
	direct := network.WithForceDirectDial(ctx, "test: as a hole punch would")
	if err := a.Host().Connect(direct, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{hole.addr}}); err != nil {
		t.Fatalf("direct connection through the blackhole: %v", err)
	}
	for _, c := range a.Host().Network().ConnsToPeer(b.ID()) {
		if !book.IsRelayed(c.RemoteMultiaddr()) && !c.RemoteMultiaddr().Equal(hole.addr) {
			t.Fatalf("direct connection to %s, not through the blackhole", c.RemoteMultiaddr())
		}
	}
	nt.Eventually(t, 10*time.Second, "relayed connection closed once idle", func() bool {
		return pathOf(a, b.ID()) == book.PathDirect && nt.RelayedConns(a, b.ID()) == 0
	})
	s.awaitMore(t, 10, "messages over the direct connection")

	nt.CloseListeners(b) // no new direct connection: only the relay is left
	hole.swallow()
	s.awaitMore(t, 10, "messages through the relay after the direct path died silently")
	// b only receives, so only a's relayed connection tells it: it checks
	// its side of the direct connection and closes it.
	nt.Eventually(t, 10*time.Second, "b sees a relayed again", func() bool {
		return pathOf(b, a.ID()) == book.PathRelayed
	})
	for _, err := range s.finish() {
		t.Errorf("sender saw: %v", err)
	}
	checkOnceInOrder(t, got(), a.ID(), s.acked.Load())
}

// blackhole forwards TCP connections to a target until swallow is called;
// from then on it keeps them open and drops every byte, as a NAT that lost
// its mapping does.
type blackhole struct {
	addr ma.Multiaddr
	ln   net.Listener
	dead atomic.Bool
	wg   sync.WaitGroup
	mu   sync.Mutex
	cs   []net.Conn
}

func newBlackhole(t *testing.T, target ma.Multiaddr) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	to, err := manet.ToNetAddr(target)
	if err != nil {
		t.Fatal(err)
	}
	h := &blackhole{ln: ln, addr: ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ln.Addr().(*net.TCPAddr).Port))}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", to.String())
			if err != nil {
				c.Close()
				continue
			}
			h.mu.Lock()
			h.cs = append(h.cs, c, up)
			h.mu.Unlock()
			h.wg.Add(2)
			go h.pipe(up, c)
			go h.pipe(c, up)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		h.mu.Lock()
		for _, c := range h.cs {
			c.Close()
		}
		h.mu.Unlock()
		h.wg.Wait()
	})
	return h
}

func (h *blackhole) swallow() { h.dead.Store(true) }

func (h *blackhole) pipe(dst, src net.Conn) {
	defer h.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if h.dead.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}
