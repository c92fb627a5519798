package resume

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/protocol"
)

const testProto = "/overlay-test/session/1.0.0"

type side struct {
	h        host.Host
	m        *Manager
	accepted chan *Session
}

func newSide(t *testing.T, cfg Config) *side {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &side{h: h, m: m, accepted: make(chan *Session, 4)}
	h.SetStreamHandler(testProto, func(st network.Stream) {
		var id protocol.SessionID
		_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(st, id[:]); err != nil {
			st.Reset()
			return
		}
		_ = st.SetReadDeadline(time.Time{})
		ss, err := m.Accept(st, id, func(st network.Stream) error { _, err := st.Write([]byte{1}); return err })
		if err == nil {
			s.accepted <- ss
		}
	})
	t.Cleanup(func() { m.Close(); h.Close() })
	return s
}

// pair returns a client session from a to b and b's side of it.
func pair(t *testing.T, a, b *side) (*Session, *Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.h.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	st, err := a.h.NewStream(ctx, b.h.ID(), testProto)
	if err != nil {
		t.Fatal(err)
	}
	id := NewID()
	if _, err := st.Write(id[:]); err != nil {
		t.Fatal(err)
	}
	var ok [1]byte
	if _, err := io.ReadFull(st, ok[:]); err != nil {
		t.Fatal(err)
	}
	c, err := a.m.Open(st, id)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-b.accepted:
		return c, s
	case <-ctx.Done():
		t.Fatal("no session accepted")
	}
	return nil, nil
}

// pump writes n pseudo-random bytes (seeded) to w in writes of random
// size, then half-closes; it returns their checksum.
func pump(w interface {
	io.Writer
	CloseWrite() error
}, n int, seed uint64) ([32]byte, error) {
	r := rand.New(rand.NewPCG(seed, seed))
	h := sha256.New()
	buf := make([]byte, 100<<10)
	for n > 0 {
		k := min(n, 1+r.IntN(len(buf)))
		for i := range buf[:k] {
			buf[i] = byte(r.Uint32())
		}
		h.Write(buf[:k])
		if _, err := w.Write(buf[:k]); err != nil {
			return [32]byte{}, err
		}
		n -= k
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, w.CloseWrite()
}

// drain reads r to its end and returns the checksum and the count.
func drain(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n, err
}

type result struct {
	sum [32]byte
	n   int64
	err error
}

// transfer sends n bytes each way at once and checks what arrived.
func transfer(t *testing.T, c, s *Session, n int, during func()) {
	t.Helper()
	sent := make(chan result, 2)
	got := make(chan result, 2)
	for i, x := range []*Session{c, s} {
		go func() {
			sum, err := pump(x, n, uint64(i+1))
			sent <- result{sum: sum, err: err}
		}()
		go func() {
			sum, k, err := drain(x)
			got <- result{sum: sum, n: k, err: err}
		}()
	}
	if during != nil {
		during()
	}
	var sums, gots [][32]byte
	for range 2 {
		r := <-sent
		if r.err != nil {
			t.Fatalf("write: %v", r.err)
		}
		sums = append(sums, r.sum)
		g := <-got
		if g.err != nil || g.n != int64(n) {
			t.Fatalf("read %d bytes of %d: %v", g.n, n, g.err)
		}
		gots = append(gots, g.sum)
	}
	if !(sums[0] == gots[0] && sums[1] == gots[1] || sums[0] == gots[1] && sums[1] == gots[0]) || sums[0] == sums[1] {
		t.Fatal("bytes arrived corrupted, lost, repeated or reordered")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, x := range []*Session{c, s} {
		if err := x.Wait(ctx); err != nil {
			t.Fatalf("session end: %v", err)
		}
	}
}

func TestSessionCarriesBytesBothWays(t *testing.T) {
	a, b := newSide(t, Config{}), newSide(t, Config{})
	c, s := pair(t, a, b)
	transfer(t, c, s, 8<<20, nil)
	if a.m.Sessions() != 0 || b.m.Sessions() != 0 {
		t.Fatalf("sessions left: %d, %d", a.m.Sessions(), b.m.Sessions())
	}
}

// Streams cut again and again under a long transfer both ways, on either
// side, each time another 512 KiB has arrived: the session resumes each
// time, and every byte arrives once, in order.
func TestSessionSurvivesStreamResets(t *testing.T) {
	a, b := newSide(t, Config{Buffer: 1 << 20}), newSide(t, Config{Buffer: 1 << 20})
	c, s := pair(t, a, b)
	const size, every = 8 << 20, 512 << 10
	stop := make(chan struct{})
	cuts := make(chan int)
	transfer(t, c, s, size, func() {
		go func() {
			k := 0
			defer func() { cuts <- k }()
			next := uint64(every)
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				s.mu.Lock()
				got := s.recvOff
				s.mu.Unlock()
				if got < next {
					continue
				}
				next += every
				x := []*Session{c, s}[k%2]
				x.mu.Lock()
				if x.cur != nil {
					x.cur.st.Reset()
					k++
				}
				x.mu.Unlock()
			}
		}()
	})
	close(stop)
	if k := <-cuts; k < size/every/4 {
		t.Fatalf("only %d streams cut during the transfer", k)
	}
}

// A peer that is gone for good fails the session with ErrGone once
// GoneAfter has passed, on both sides.
func TestSessionPeerGone(t *testing.T) {
	a, b := newSide(t, Config{GoneAfter: time.Second}), newSide(t, Config{GoneAfter: time.Second})
	c, s := pair(t, a, b)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	b.h.Network().(interface{ Close() error }).Close()
	_ = a.h.Network().ClosePeer(b.h.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Wait(ctx); !errors.Is(err, ErrGone) {
		t.Fatalf("client session ended with %v, want ErrGone", err)
	}
	if err := s.Wait(ctx); !errors.Is(err, ErrGone) {
		t.Fatalf("server session ended with %v, want ErrGone", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, ErrGone) {
		t.Fatalf("read after gone: %v", err)
	}
}

// Abort reaches the peer as an *Aborted with the reason.
func TestSessionAbort(t *testing.T) {
	a, b := newSide(t, Config{}), newSide(t, Config{})
	c, s := pair(t, a, b)
	s.Abort(errors.New("service went away"))
	_, err := c.Read(make([]byte, 1))
	var ab *Aborted
	if !errors.As(err, &ab) || ab.Reason != "service went away" {
		t.Fatalf("read: %v, want the peer's abort", err)
	}
}

// A resume of a session the server saw complete learns the end (its last
// ack may have been lost with a stream); one of an unknown session, that
// it is gone; one by another peer finds nothing.
func TestResumeAfterCompletionAndUnknown(t *testing.T) {
	a, b := newSide(t, Config{}), newSide(t, Config{})
	c, s := pair(t, a, b)
	transfer(t, c, s, 1<<20, nil)
	ask := func(id protocol.SessionID) protocol.ResumeAnswer {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := a.h.NewStream(ctx, b.h.ID(), protocol.ResumeID)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Reset()
		if err := protocol.WriteResume(st, id, 0); err != nil {
			t.Fatal(err)
		}
		ans, err := protocol.ReadResumeAnswer(st, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = st.CloseWrite()
		return ans
	}
	if ans := ask(c.ID()); !ans.OK || ans.Off != 1<<20+1 {
		t.Fatalf("resume of the completed session: %+v, want resumed at %d", ans, 1<<20+1)
	}
	if ans := ask(NewID()); ans.OK || ans.Reason == "" {
		t.Fatalf("resume of an unknown session: %+v, want gone", ans)
	}
}
