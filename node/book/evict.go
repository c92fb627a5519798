package book

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Policy bounds the book. Strangers (foreign, rejected, discovered and
// not yet classified peers) come and go; members are what the book is for,
// so they are never evicted and are kept even when they alone exceed
// MaxPeers.
type Policy struct {
	// StrangerTTL is how long a stranger stays after it was last seen.
	StrangerTTL time.Duration
	// MaxPeers caps the number of entries, bounding memory and file size
	// against a flood of throwaway identities.
	MaxPeers int
}

// DefaultPolicy returns the bounds a node uses unless configured otherwise.
// A day outlives a restart or a night offline, so peers we met recently are
// still known; 10000 entries is far more than a private overlay has members
// and what a public relay meets in a day, yet only a few MiB of memory and
// file.
func DefaultPolicy() Policy {
	return Policy{StrangerTTL: 24 * time.Hour, MaxPeers: 10000}
}

// Validate reports a policy that would disable a bound, naming the field.
func (p Policy) Validate() error {
	var errs []error
	if p.StrangerTTL <= 0 {
		errs = append(errs, fmt.Errorf("peer book: stranger TTL must be positive, not %v", p.StrangerTTL))
	}
	if p.MaxPeers <= 0 {
		errs = append(errs, fmt.Errorf("peer book: max peers must be positive, not %d", p.MaxPeers))
	}
	return errors.Join(errs...)
}

// Evict removes strangers last seen more than StrangerTTL before now, then,
// while the book holds more than MaxPeers, the least recently seen strangers.
// Peers for which connected reports true are kept either way, as are members;
// a nil connected means no peer is connected. It returns how many peers it
// removed.
func (b *Book) Evict(now time.Time, connected func(peer.ID) bool) int {
	type cand struct {
		id   peer.ID
		seen time.Time
	}
	var cands []cand
	b.mu.Lock()
	for id, e := range b.peers {
		if e.info.State.Stranger() {
			cands = append(cands, cand{id, e.info.LastSeen})
		}
	}
	b.mu.Unlock()

	// Ask about connections without holding the lock: connected may take the
	// network's locks, and network notifications call into the book.
	busy := make(map[peer.ID]bool)
	if connected != nil {
		for _, c := range cands {
			if connected(c.id) {
				busy[c.id] = true
			}
		}
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	removed := 0
	var idle []cand
	for _, c := range cands {
		e, ok := b.peers[c.id]
		// Re-check: the entry may have changed while the lock was free.
		if !ok || !e.info.State.Stranger() || busy[c.id] {
			continue
		}
		if now.Sub(e.info.LastSeen) > b.policy.StrangerTTL {
			delete(b.peers, c.id)
			removed++
			continue
		}
		idle = append(idle, cand{c.id, e.info.LastSeen})
	}
	if over := len(b.peers) - b.policy.MaxPeers; over > 0 {
		sort.Slice(idle, func(i, j int) bool {
			if !idle[i].seen.Equal(idle[j].seen) {
				return idle[i].seen.Before(idle[j].seen)
			}
			return idle[i].id < idle[j].id
		})
		for _, c := range idle[:min(over, len(idle))] {
			delete(b.peers, c.id)
			removed++
		}
	}
	if removed > 0 {
		b.notifyLocked()
	}
	return removed
}

// makeRoomLocked evicts one stranger other than keep, so that a new entry
// fits, and reports whether keep may stay. Lacking connection state here, it
// prefers strangers with no path. A linear scan per insert beyond the cap is
// cheap at the default 10000 entries and keeps the book a plain map.
func (b *Book) makeRoomLocked(keep peer.ID) bool {
	var victim *entry
	for id, e := range b.peers {
		if id == keep || !e.info.State.Stranger() {
			continue
		}
		if victim == nil || evictsBefore(&e.info, &victim.info) {
			victim = e
		}
	}
	if victim != nil {
		delete(b.peers, victim.info.ID)
		return true
	}
	// Only members are left to displace: members may exceed the cap, a
	// stranger may not.
	return !b.peers[keep].info.State.Stranger()
}

// evictsBefore orders strangers for eviction: unreached before reached, then
// least recently seen first.
func evictsBefore(a, b *PeerInfo) bool {
	aIdle, bIdle := a.Path == PathNone, b.Path == PathNone
	if aIdle != bIdle {
		return aIdle
	}
	if !a.LastSeen.Equal(b.LastSeen) {
		return a.LastSeen.Before(b.LastSeen)
	}
	return a.ID < b.ID
}
