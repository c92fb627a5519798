package trust

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestLimiterBudget(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(Budget{Burst: 8, Every: 5 * time.Second})
	l.now = func() time.Time { return now }
	p, q := peer.ID("p"), peer.ID("q")
	checked := 0
	for i := 0; i < 20; i++ {
		if l.has(p) {
			checked++
			l.take(p, costBad)
		}
	}
	if checked != 3 { // 8 tokens: 3 bad documents leave none
		t.Fatalf("%d bad documents checked from a full bucket, want 3", checked)
	}
	if !l.has(q) {
		t.Fatal("another peer pays for p's flood")
	}
	now = now.Add(4 * time.Second)
	if l.has(p) {
		t.Fatal("a token back before Every passed")
	}
	now = now.Add(time.Second)
	if !l.has(p) {
		t.Fatal("no token back after Every")
	}
	now = now.Add(time.Hour)
	l.take(p, 0)
	if b := l.m[p]; b.tokens != 8 {
		t.Fatalf("bucket refilled to %v, want the burst 8", b.tokens)
	}
}
