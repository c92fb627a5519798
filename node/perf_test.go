package node_test

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/book"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
)

// perfPath reports how n's only perf session with p is carried:
// "direct", "relayed", "" (none, or between streams); and its bytes
// acknowledged so far.
func perfPath(n *node.Node, p peer.ID) (string, uint64) {
	for _, s := range n.Sessions().List() {
		if s.Peer != p {
			continue
		}
		switch {
		case s.Conn == nil:
			return "", s.Sent
		case book.IsRelayed(s.Conn.RemoteMultiaddr()):
			return "relayed", s.Sent
		}
		return "direct", s.Sent
	}
	return "", 0
}

// A perf run that starts on the relay moves to a direct connection when
// one appears, and back to the relay when it dies, and ends without an
// error, every byte counted.
func TestPerfMovesToDirectAndBack(t *testing.T) {
	ctx := nt.Context(t, 180*time.Second)
	a, b := nt.RelayedPair(ctx, t)
	// A first run measures the relay here, to size the run under test: it
	// must last long enough on the relay at its end.
	warm, err := a.Perf(ctx, b.ID().String(), 8<<20, 0)
	if err != nil {
		t.Fatalf("perf through the relay: %v", err)
	}
	rate := float64(warm.Upload) / warm.Total.Seconds()
	size := uint64(max(rate*4, 32<<20))
	t.Logf("relay: %.0f MB/s; run of %d MiB", rate/1e6, size>>20)

	type result struct {
		res protocol.PerfResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := a.Perf(ctx, b.ID().String(), size, 0)
		done <- result{res, err}
	}()
	nt.Eventually(t, 30*time.Second, "perf under way through the relay", func() bool {
		p, sent := perfPath(a, b.ID())
		return p == "relayed" && sent > 1<<20
	})

	nt.ConnectDirect(ctx, t, a, b)
	var atDirect uint64
	nt.Eventually(t, 20*time.Second, "perf on the direct connection", func() bool {
		p, sent := perfPath(a, b.ID())
		atDirect = sent
		return p == "direct"
	})
	nt.Eventually(t, 20*time.Second, "perf bytes over the direct connection", func() bool {
		p, sent := perfPath(a, b.ID())
		return p != "direct" || sent > atDirect
	})
	if p, _ := perfPath(a, b.ID()); p != "direct" {
		t.Fatalf("perf run ended or left the direct connection early (%q): make it longer", p)
	}

	nt.CloseListeners(b)
	for _, c := range a.Host().Network().ConnsToPeer(b.ID()) {
		if !book.IsRelayed(c.RemoteMultiaddr()) {
			_ = c.Close()
		}
	}
	nt.Eventually(t, 30*time.Second, "perf back on the relay", func() bool {
		p, _ := perfPath(a, b.ID())
		return p == "relayed"
	})
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("perf: %v", r.err)
		}
		t.Logf("perf: %d MiB in %s", r.res.Upload>>20, r.res.Total.Round(time.Millisecond))
	case <-ctx.Done():
		t.Fatal("perf did not end")
	}
	nt.Eventually(t, 10*time.Second, "no session left", func() bool {
		return a.Sessions().Sessions() == 0 && b.Sessions().Sessions() == 0
	})
}
