package trust

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Budget is what each peer may make this node check: a token bucket of
// Burst tokens, refilled at one per Every. Offering a document costs
// costOffer; one that fails its check (malformed, another CA, a forged
// signature) costs costBad more. A document over budget is dropped unread
// by the Store and counted as RateLimited.
type Budget struct {
	Burst int
	Every time.Duration
}

// DefaultBudget lets an honest member pass on a burst of changes (a list
// and a policy, several times over) while a member flooding bogus lists
// gets a few checked and then one every Every.
var DefaultBudget = Budget{Burst: 8, Every: 5 * time.Second}

const (
	costOffer = 1
	costBad   = 3
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

// allow takes cost tokens from p's bucket and reports whether it had them;
// without enough, the bucket is left as it is.
func (l *limiter) allow(p peer.ID, cost int) bool {
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
	if b.tokens < float64(cost) {
		b.tokens = 0 // a peer over budget waits for a whole token again
		return false
	}
	b.tokens -= float64(cost)
	return true
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
	return b.tokens >= costOffer
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
