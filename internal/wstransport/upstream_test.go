package wstransport

import (
	"context"
	"io"
	"testing"
	"time"
)

// Ported from go-libp2p's websocket_test.go (TestConcurrentClose): writes
// and closes racing on dialed connections neither hang the listener nor
// trip the race detector.
func TestConcurrentClose(t *testing.T) {
	tr := rawTransport(t, Config{})
	l := rawListen(t, tr)
	msg := []byte("HELLO WORLD")
	errs := make(chan error, 1)
	go func() {
		for range 100 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c, err := tr.dial(ctx, l.Multiaddr())
			cancel()
			if err != nil {
				errs <- err
				return
			}
			go c.Write(msg)
			go c.Close()
		}
		errs <- nil
	}()
	for range 100 {
		c, _, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// Ported from go-libp2p's websocket_test.go (TestWriteZero): empty writes
// succeed, write nothing, and the reader sees only the end of the stream.
func TestWriteZero(t *testing.T) {
	tr := rawTransport(t, Config{})
	l := rawListen(t, tr)
	errs := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := tr.dial(ctx, l.Multiaddr())
		if err != nil {
			errs <- err
			return
		}
		defer c.Close()
		for range 100 {
			if n, err := c.Write(nil); n != 0 || err != nil {
				t.Errorf("empty write: %d, %v", n, err)
			}
		}
		errs <- nil
	}()
	c, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if n != 0 || err != io.EOF {
		t.Fatalf("read %d bytes, %v; want 0, EOF", n, err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}
