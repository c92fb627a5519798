package tunnel_test

import (
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// Big transfers both ways at once arrive whole (checked by hash) over the
// relay and over a direct connection. Under -race the sizes are smaller
// (race_test.go): 256 MiB each way through the race detector takes minutes.
func TestLargeTransferBothWays(t *testing.T) {
	t.Parallel()
	t.Run("relayed", func(t *testing.T) {
		_, a, b := relayedPair(t)
		transfer(t, a, b, transferSize)
	})
	t.Run("direct", func(t *testing.T) {
		r := nt.Relay(t)
		relays := []ma.Multiaddr{nt.WSAddr(t, r)}
		a := nt.Peer(t, relays, nt.WithDirect(0))
		b := nt.Peer(t, relays, nt.WithDirect(0))
		if _, err := a.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, b).String()); err != nil {
			t.Fatal(err)
		}
		transfer(t, a, b, transferSize/4)
		for _, c := range a.Host().Network().ConnsToPeer(b.ID()) {
			if c.Stat().Limited {
				t.Errorf("a limited connection to b: %s", c.RemoteMultiaddr())
			}
		}
	})
}

func transfer(t *testing.T, a, b *node.Node, size int64) {
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	atService := make(chan result, 1)
	sentSum := make(chan [32]byte, 1)
	svc := serve(t, func(c net.Conn) {
		got := make(chan result, 1)
		go func() {
			sum, n, err := hashAll(c)
			got <- result{sum, n, err}
		}()
		sum, err := writeHashed(c, 2, size)
		if err == nil {
			c.(*net.TCPConn).CloseWrite()
		}
		sentSum <- sum
		atService <- <-got
	})
	expose(t, b, "bulk", svc.addr())
	c := dial(t, forward(t, a, b, "bulk"))
	start := time.Now()
	sent := make(chan error, 1)
	var clientSum [32]byte
	go func() {
		var err error
		clientSum, err = writeHashed(c, 1, size)
		if err == nil {
			err = c.CloseWrite()
		}
		sent <- err
	}()
	sum, n, err := hashAll(c)
	if err != nil || n != size {
		t.Fatalf("client read %d bytes, %v; want %d", n, err, size)
	}
	if err := <-sent; err != nil {
		t.Fatalf("client write: %v", err)
	}
	got := <-atService
	took := time.Since(start)
	if got.err != nil || got.n != size {
		t.Fatalf("service read %d bytes, %v; want %d", got.n, got.err, size)
	}
	if got.sum != clientSum {
		t.Fatal("the service got other bytes than the client sent")
	}
	if sum != <-sentSum {
		t.Fatal("the client got other bytes than the service sent")
	}
	t.Logf("%d MiB each way in %s", size>>20, took.Round(time.Millisecond))
	nt.Eventually(t, 10*time.Second, "tunnel closed", func() bool { return quiet(a, b) && svc.open() == 0 })
}

// writeHashed writes size pseudo-random bytes from seed and returns their hash.
func writeHashed(w io.Writer, seed byte, size int64) ([32]byte, error) {
	h := sha256.New()
	src := rand.NewChaCha8([32]byte{seed})
	_, err := io.CopyBuffer(io.MultiWriter(w, h), io.LimitReader(src, size), make([]byte, 64<<10))
	return [32]byte(h.Sum(nil)), err
}

func hashAll(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.CopyBuffer(h, r, make([]byte, 64<<10))
	return [32]byte(h.Sum(nil)), n, err
}
