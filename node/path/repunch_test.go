package path

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The node starts at most maxRepunch punches per peer within
// repunchWindow, and runs one keepPunching loop per peer.
func TestRepunchBounds(t *testing.T) {
	var p puncher
	a, b := peer.ID("a"), peer.ID("b")
	for i := range maxRepunch {
		if !p.allow(a) {
			t.Fatalf("punch %d refused, want %d allowed", i+1, maxRepunch)
		}
	}
	if p.allow(a) {
		t.Fatalf("punch %d allowed within %s", maxRepunch+1, repunchWindow)
	}
	p.refund(a)
	if !p.allow(a) || p.allow(a) {
		t.Fatal("a refunded punch was not allowed again, or more were")
	}
	if !p.allow(b) {
		t.Fatal("another peer's punch refused")
	}
	if !p.keep(a) || p.keep(a) {
		t.Fatal("want one keepPunching loop per peer")
	}
	p.unkeep(a)
	if !p.keep(a) {
		t.Fatal("a peer's loop could not start again after it ended")
	}
	p.close()
	if p.keep(b) || p.allow(b) {
		t.Fatal("punching goes on after close")
	}
}
