package topics

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// rates holds a token bucket per topic and author, forgetting idle ones.
type rates struct {
	lim Limits
	mu  sync.Mutex
	m   map[rateKey]*rateEntry
}

type rateKey struct {
	topic  string
	author peer.ID
}

type rateEntry struct {
	l    *rate.Limiter
	used time.Time
}

// maxRates bounds the buckets kept; idle ones go first.
const maxRates = 16384

func newRates(l Limits) *rates { return &rates{lim: l, m: map[rateKey]*rateEntry{}} }

// allow reports whether author may send one more message to topic now. A
// peer's bucket holds twice a local publisher's burst: messages bunch up
// on their way.
func (r *rates) allow(topic string, author peer.ID, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := rateKey{topic, author}
	e := r.m[k]
	if e == nil {
		if len(r.m) >= maxRates {
			r.evictLocked(now)
		}
		e = &rateEntry{l: rate.NewLimiter(rate.Limit(r.lim.Rate), 2*r.lim.Burst)}
		r.m[k] = e
	}
	e.used = now
	return e.l.AllowN(now, 1)
}

// evictLocked drops buckets idle long enough to be full again, or the
// oldest when none is.
func (r *rates) evictLocked(now time.Time) {
	full := time.Duration(float64(2*r.lim.Burst)/r.lim.Rate*float64(time.Second)) + time.Second
	var oldest rateKey
	var at time.Time
	for k, e := range r.m {
		if now.Sub(e.used) > full {
			delete(r.m, k)
			continue
		}
		if at.IsZero() || e.used.Before(at) {
			oldest, at = k, e.used
		}
	}
	if len(r.m) >= maxRates {
		delete(r.m, oldest)
	}
}
