package tunnel_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/book"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// stream writes a pseudo-random byte stream into a TCP connection to an
// echo service, without pause, and checks every byte that comes back
// against the same sequence: a byte lost, repeated, reordered or changed
// is a mismatch at its position.
type stream struct {
	c        *net.TCPConn
	written  atomic.Int64
	verified atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	errs     []error
}

func startStream(c *net.TCPConn) *stream {
	s := &stream{c: c, stop: make(chan struct{})}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		src := rand.NewChaCha8([32]byte{7})
		buf := make([]byte, 16<<10)
		for {
			select {
			case <-s.stop:
				if err := c.CloseWrite(); err != nil {
					s.fail(fmt.Errorf("close write: %w", err))
				}
				return
			default:
			}
			_, _ = src.Read(buf)
			n, err := c.Write(buf)
			s.written.Add(int64(n))
			if err != nil {
				s.fail(fmt.Errorf("write after %d bytes: %w", s.written.Load(), err))
				return
			}
		}
	}()
	go func() {
		defer s.wg.Done()
		want := rand.NewChaCha8([32]byte{7})
		buf := make([]byte, 32<<10)
		exp := make([]byte, len(buf))
		for {
			n, err := c.Read(buf)
			if n > 0 {
				_, _ = want.Read(exp[:n])
				if !bytes.Equal(buf[:n], exp[:n]) {
					s.fail(fmt.Errorf("bytes %d..%d differ from those sent", s.verified.Load(), s.verified.Load()+int64(n)))
					return
				}
				s.verified.Add(int64(n))
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				s.fail(fmt.Errorf("read after %d bytes: %w", s.verified.Load(), err))
				return
			}
		}
	}()
	return s
}

func (s *stream) fail(err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}

func (s *stream) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// awaitMore waits until n more bytes than now came back intact.
func (s *stream) awaitMore(t *testing.T, n int64, what string) {
	t.Helper()
	want := s.verified.Load() + n
	nt.Eventually(t, 60*time.Second, what, func() bool {
		if err := s.failed(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return s.verified.Load() >= want
	})
}

// finish stops writing and waits for every byte written to come back.
func (s *stream) finish(t *testing.T) {
	t.Helper()
	close(s.stop)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("stream did not end: %d of %d bytes back", s.verified.Load(), s.written.Load())
	}
	if err := s.failed(); err != nil {
		t.Fatal(err)
	}
	if s.verified.Load() != s.written.Load() {
		t.Fatalf("%d bytes written, %d came back", s.written.Load(), s.verified.Load())
	}
}

// tunnelPath reports how n's only tunnel is carried now: "direct",
// "relayed" or "" (none, or between streams).
func tunnelPath(t *testing.T, n *node.Node) string {
	ts := n.Tunnels().Tunnels()
	if len(ts) != 1 {
		return ""
	}
	if !ts[0].Resumable {
		t.Fatal("the tunnel is not resumable (1.0.0)")
	}
	switch c := ts[0].Conn; {
	case c == nil:
		return ""
	case book.IsRelayed(c.RemoteMultiaddr()):
		return "relayed"
	}
	return "direct"
}

// A forwarded TCP connection carrying a continuous stream starts on the
// relay; a direct connection appears (as a hole punch gives one), and the
// tunnel moves to it, which lets the relayed connection close once idle;
// then the direct connection dies and the tunnel goes back through the
// relay. The program at either end sees no error, and every byte arrives
// once, in order.
func TestTunnelMovesToDirectAndBack(t *testing.T) {
	ctx := nt.Context(t, 120*time.Second)
	a, b := nt.RelayedPair(ctx, t)
	svc := serve(t, echo)
	expose(t, b, "echo", svc.addr())
	s := startStream(dial(t, forward(t, a, b, "echo")))
	s.awaitMore(t, 256<<10, "bytes through the relay")
	if p := tunnelPath(t, a); p != "relayed" {
		t.Fatalf("tunnel path before the direct connection = %q, want relayed", p)
	}

	nt.ConnectDirect(ctx, t, a, b)
	nt.Eventually(t, 20*time.Second, "tunnel on the direct connection, both sides", func() bool {
		return tunnelPath(t, a) == "direct" && tunnelPath(t, b) == "direct"
	})
	s.awaitMore(t, 1<<20, "bytes over the direct connection")
	nt.Eventually(t, 20*time.Second, "relayed connection closed once idle", func() bool {
		return nt.RelayedConns(a, b.ID()) == 0 && nt.RelayedConns(b, a.ID()) == 0
	})
	s.awaitMore(t, 256<<10, "bytes with the relayed connection gone")

	// The direct path dies for good: b stops listening, the connection drops.
	nt.CloseListeners(b)
	for _, c := range a.Host().Network().ConnsToPeer(b.ID()) {
		_ = c.Close()
	}
	s.awaitMore(t, 256<<10, "bytes back through the relay")
	nt.Eventually(t, 20*time.Second, "tunnel on the relay again", func() bool { return tunnelPath(t, a) == "relayed" })
	s.finish(t)

	fs := a.Tunnels().Forwards()
	if len(fs) != 1 || fs[0].Failed != 0 || fs[0].LastError != "" {
		t.Errorf("forward after the moves: %+v", fs)
	}
	nt.Eventually(t, 20*time.Second, "tunnel closed", func() bool { return quiet(a, b) && svc.open() == 0 })
	t.Logf("%d bytes each way", s.written.Load())
}
