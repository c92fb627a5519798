// Package backoff is the one retry schedule of the overlay: capped
// exponential backoff with jitter, on top of go-libp2p's own backoff
// strategies, so the keeper, the DHT bootstrap and the DHT publisher pace
// their retries the same way.
package backoff

import (
	"math/rand"
	"time"

	lpbackoff "github.com/libp2p/go-libp2p/p2p/discovery/backoff"
)

// Strategy yields the wait before each next attempt; Reset starts over
// after a success.
type Strategy = lpbackoff.BackoffStrategy

// New returns a schedule that waits lo, then doubles up to hi, each wait
// moved by up to ±20% so that many nodes that failed together (a relay
// restart) do not retry in lockstep.
func New(lo, hi time.Duration) Strategy {
	hi = max(hi, lo)
	f := lpbackoff.NewExponentialBackoff(lo, hi, jitter, lo, 2, 0,
		rand.NewSource(time.Now().UnixNano()))
	return f()
}

// jitter moves d, first bounded to [lo, hi], by up to ±20%.
func jitter(d, lo, hi time.Duration, rng *rand.Rand) time.Duration {
	d = max(lo, min(d, hi))
	spread := int64(d) / 5
	if spread <= 0 {
		return d
	}
	return d - time.Duration(spread) + time.Duration(rng.Int63n(2*spread+1))
}
