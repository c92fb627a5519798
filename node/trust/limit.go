package trust

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Budget is what each peer may make this node check: a token bucket of
// Burst tokens, refilled at one per Every. A document that fails its check
// (malformed, another CA, a forged signature) costs costBad, an older one
// than the node holds costRollback; a newer one or the one held costs
// nothing. While a peer has less than a token, its documents are dropped
// unchecked (unread when it can tell beforehand) and counted as
// RateLimited.
type Budget struct {
	Burst int
	Every time.Duration
}

// DefaultBudget lets a member that sends bogus documents get a few
// checked, then one every few Every.
var DefaultBudget = Budget{Burst: 8, Every: 5 * time.Second}

const (
	costOne      = 1
	costRollback = 1
	costBad      = 3
	// maxBuckets bounds the peers tracked; full buckets are forgotten first.
	maxBuckets = 4096
)

type bucket struct {
	tokens float64
	at     time.Time
}

type limiter struct {
	b   Budget
	now func() time.Time

	mu sync.Mutex
	m  map[peer.ID]*bucket
}

func newLimiter(b Budget) *limiter {
	return &limiter{b: b, now: time.Now, m: map[peer.ID]*bucket{}}
}

// take takes cost tokens from p's bucket, down to none.
func (l *limiter) take(p peer.ID, cost int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.m[p]
	if !ok {
		if len(l.m) >= maxBuckets {
			l.forgetFull(now)
		}
		b = &bucket{tokens: float64(l.b.Burst), at: now}
		l.m[p] = b
	}
	l.refill(b, now)
	b.tokens = max(0, b.tokens-float64(cost))
}

// has reports whether p has a token left, without taking it.
func (l *limiter) has(p peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.m[p]
	if !ok {
		return true
	}
	l.refill(b, l.now())
	return b.tokens >= costOne
}

func (l *limiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(float64(l.b.Burst), b.tokens+float64(d)/float64(l.b.Every))
	}
	b.at = now
}

// forgetFull drops the buckets that have refilled: those peers are as new.
// If none has, it drops them all rather than grow.
func (l *limiter) forgetFull(now time.Time) {
	for p, b := range l.m {
		if l.refill(b, now); b.tokens >= float64(l.b.Burst) {
			delete(l.m, p)
		}
	}
	if len(l.m) >= maxBuckets {
		clear(l.m)
	}
}
