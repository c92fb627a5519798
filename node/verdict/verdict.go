// Package verdict keeps this session's handshake outcome per peer, and lets
// callers wait for one. Unlike the peer book it starts empty at every start,
// so a verdict from an earlier run is never trusted.
package verdict

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/events"
)

// Table holds this session's handshake outcome per peer. Waiters wake on
// every change. It is safe for concurrent use; make it with New.
type Table struct {
	mu      sync.Mutex
	m       map[peer.ID]verdict
	changed chan struct{} // closed and replaced on every change
}

type verdict struct {
	state events.State
	at    time.Time
}

// New returns an empty table.
func New() *Table {
	return &Table{m: make(map[peer.ID]verdict), changed: make(chan struct{})}
}

// Get returns p's verdict, "" when it has none.
func (v *Table) Get(p peer.ID) events.State {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.m[p].state
}

// Set records s.
func (v *Table) Set(p peer.ID, s events.State) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.m[p] = verdict{state: s, at: time.Now()}
	v.notifyLocked()
}

// SetIfAbsent records s only where p has no verdict yet.
func (v *Table) SetIfAbsent(p peer.ID, s events.State) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.m[p]; ok {
		return false
	}
	v.m[p] = verdict{state: s, at: time.Now()}
	v.notifyLocked()
	return true
}

// Forget drops p's verdict unless keep says to keep it.
func (v *Table) Forget(p peer.ID, keep func(events.State) bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if d, ok := v.m[p]; ok && !keep(d.state) {
		delete(v.m, p)
	}
}

// Prune drops the verdicts reached before cutoff of peers no longer
// connected, so strangers that came and went leave nothing behind, and
// returns whose it dropped.
func (v *Table) Prune(cutoff time.Time, connected func(peer.ID) bool) (gone []peer.ID) {
	v.mu.Lock()
	var old []peer.ID
	for p, d := range v.m {
		if d.at.Before(cutoff) {
			old = append(old, p)
		}
	}
	v.mu.Unlock()
	for _, p := range old {
		if connected(p) {
			continue
		}
		v.mu.Lock()
		if d, ok := v.m[p]; ok && d.at.Before(cutoff) {
			delete(v.m, p)
			gone = append(gone, p)
		}
		v.mu.Unlock()
	}
	return gone
}

func (v *Table) notifyLocked() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// Wait returns the peer's verdict, waiting for one until ctx is done.
func (v *Table) Wait(ctx context.Context, p peer.ID) (events.State, bool) {
	for {
		v.mu.Lock()
		d, ok := v.m[p]
		ch := v.changed
		v.mu.Unlock()
		if ok {
			return d.state, true
		}
		select {
		case <-ctx.Done():
			return "", false
		case <-ch:
		}
	}
}
