package relay

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	basicconnmgr "github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

// refusalLogEvery bounds the log to one line per limit this often: a flood
// refused by a limit must not become a flood of log lines.
const refusalLogEvery = 10 * time.Second

// limitHints say which setting raises a limit, for the log line.
var limitHints = map[string]string{
	"max-reservations":           "--max-reservations",
	"max-reservations-per-ip":    "--max-reservations-per-ip",
	"max-circuits":               "--max-circuits",
	"rcmgr-conns-inbound":        "--max-reservations (connection limits derive from it), ulimit -n",
	"rcmgr-conns-outbound":       "--max-reservations (connection limits derive from it), ulimit -n",
	"connmgr-trim":               "--max-reservations (the trim watermarks derive from it)",
	"rcmgr-conns-per-ip":         "--max-reservations-per-ip (the per-IP connection limit derives from it)",
	"rcmgr-conn-rate-per-ip":     "--max-reservations-per-ip (the per-IP connection rate derives from it)",
	"pending-timeout":            "none: a connection that does not finish its security handshake within seconds is a stall or an attack",
	"pending-per-ip":             "--max-reservations-per-ip and --max-reservations (the per-IP bound of unfinished handshakes derives from both)",
	"pending-total":              "--max-reservations (the bound of unfinished handshakes derives from it)",
	"handshake-rejected":         "none: peers of another network, version or key, or refused certificates (--log-level debug names each)",
	"stranger-grace":             "--relay-acl open or allowlist to serve non-members; --stranger-grace",
	"strangers max-reservations": "none: non-members get an eighth of --max-reservations",
}

// Refusals counts what limits refused or trimmed, by limit, and logs one
// line per limit at most every refusalLogEvery. It is safe for concurrent
// use; the zero value is not: use NewRefusals.
type Refusals struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	counts  map[string]int64
	logged  map[string]time.Time
	pending map[string]int64 // refused since the last line about the limit
}

// NewRefusals returns an empty count that logs to log.
func NewRefusals(log *slog.Logger) *Refusals {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Refusals{log: log, now: time.Now, counts: map[string]int64{},
		logged: map[string]time.Time{}, pending: map[string]int64{}}
}

// Add counts one refusal by limit.
func (r *Refusals) Add(limit string) { r.AddN(limit, 1) }

// AddN counts n refusals by limit.
func (r *Refusals) AddN(limit string, n int64) {
	now := r.now()
	r.mu.Lock()
	r.counts[limit] += n
	r.pending[limit] += n
	last, seen := r.logged[limit]
	if seen && now.Sub(last) < refusalLogEvery {
		r.mu.Unlock()
		return
	}
	count, total := r.pending[limit], r.counts[limit]
	r.pending[limit] = 0
	r.logged[limit] = now
	r.mu.Unlock()
	args := []any{"limit", limit, "refused", count, "total", total}
	if seen {
		args = append(args, "since", now.Sub(last).Round(time.Second))
	}
	if h, ok := limitHints[limit]; ok {
		args = append(args, "raise", h)
	}
	r.log.Warn("limit reached: refused or trimmed", args...)
}

// Counts returns the refusals so far, by limit.
func (r *Refusals) Counts() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.counts)
}

// trimPoll is how often WatchTrims looks for connection-manager trims.
const trimPoll = 5 * time.Second

// WatchTrims counts and logs the connection manager's trims until ctx ends:
// libp2p has no hook for them, but its last-trim time moves.
func WatchTrims(ctx context.Context, cm connmgr.ConnManager, ref *Refusals) {
	basic, ok := cm.(*basicconnmgr.BasicConnMgr)
	if !ok {
		return
	}
	last := basic.GetInfo().LastTrim
	t := time.NewTicker(trimPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if info := basic.GetInfo(); info.LastTrim.After(last) {
			last = info.LastTrim
			ref.Add("connmgr-trim")
		}
	}
}
