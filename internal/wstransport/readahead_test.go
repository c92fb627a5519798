package wstransport

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (accepted, dialed net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		got <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-got
	if a == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); d.Close() })
	return a, d
}

func readAheadOf(t *testing.T, c net.Conn) *readAhead {
	t.Helper()
	r, ok := withReadAhead(c).(*readAhead)
	if !ok {
		t.Skip("no read-ahead on this platform")
	}
	return r
}

// Bytes arrive whole and in order whatever the sizes of the reads, small
// (gorilla's header and buffer fills) or past the read-ahead buffer, and
// the end of the stream arrives after them.
func TestReadAheadKeepsTheStream(t *testing.T) {
	a, d := tcpPair(t)
	r := readAheadOf(t, a)
	want := make([]byte, 3<<20)
	rand.Read(want)
	go func() {
		for b := want; len(b) > 0; {
			n := min(len(b), 1+len(b)%40000)
			if _, err := d.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
		d.Close()
	}()
	var got bytes.Buffer
	sizes := []int{2, 125, 4096, 16406, readAheadSize, readAheadSize + 7, 1}
	for i := 0; ; i++ {
		p := make([]byte, sizes[i%len(sizes)])
		n, err := r.Read(p)
		got.Write(p[:n])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("got %d bytes, want %d, or not the same", got.Len(), len(want))
	}
}

// Connections waiting for their peers hold no buffer; one with data holds
// one until its reader has taken the data, and gives it back on Close.
func TestReadAheadIdleHoldsNothing(t *testing.T) {
	const conns = 50
	base := readAheadHeld.Load()
	type pair struct {
		r    *readAhead
		peer net.Conn
		got  chan []byte
	}
	waits := make(chan struct{}, conns)
	hook := func() {
		select {
		case waits <- struct{}{}:
		default:
		}
	}
	waiting.Store(&hook)
	defer waiting.Store(nil)
	pairs := make([]pair, conns)
	for i := range pairs {
		a, d := tcpPair(t)
		p := pair{readAheadOf(t, a), d, make(chan []byte, 1)}
		pairs[i] = p
		go func() {
			b := make([]byte, 3)
			n, _ := p.r.Read(b)
			p.got <- b[:n]
		}()
	}
	for range conns {
		<-waits // a reader found its socket empty and waits
	}
	if held := readAheadHeld.Load() - base; held != 0 {
		t.Fatalf("%d idle connections hold %d buffers", conns, held)
	}
	for _, p := range pairs {
		if _, err := p.peer.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range pairs {
		if b := <-p.got; string(b) != "hel" {
			t.Fatalf("read %q, want %q", b, "hel")
		}
	}
	// Two bytes of each are still buffered.
	if held := readAheadHeld.Load() - base; held != conns {
		t.Fatalf("%d connections with unread data hold %d buffers, want %d", conns, held, conns)
	}
	for _, p := range pairs[:conns/2] {
		b := make([]byte, 10)
		if n, err := p.r.Read(b); err != nil || string(b[:n]) != "lo" {
			t.Fatalf("read %q, %v; want %q", b[:n], err, "lo")
		}
	}
	for _, p := range pairs[conns/2:] {
		p.r.Close()
	}
	if held := readAheadHeld.Load() - base; held != 0 {
		t.Fatalf("drained or closed connections hold %d buffers", held)
	}
}

// A read deadline ends a wait for data, and Close ends it from another
// goroutine.
func TestReadAheadDeadlineAndClose(t *testing.T) {
	a, _ := tcpPair(t)
	r := readAheadOf(t, a)
	if err := r.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	if err := r.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 10))
		done <- err
	}()
	r.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a waiting read")
	}
}

// Dialed connections, those of peers to their relays and to each other,
// are read ahead too.
func TestDialReadsAhead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := dialReadAhead(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*readAhead); !ok && canWaitReadable {
		t.Fatalf("dialed connection is a %T, not read ahead", c)
	}
}
