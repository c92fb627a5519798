package node

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node/book"
)

// verdicts holds this session's handshake outcome per peer. Unlike the book,
// it starts empty at every start, so a verdict from an earlier run is never
// trusted. Waiters wake on every change.
type verdicts struct {
	mu      sync.Mutex
	m       map[peer.ID]verdict
	changed chan struct{} // closed and replaced on every change
}

type verdict struct {
	state book.State
	at    time.Time
}

func newVerdicts() *verdicts {
	return &verdicts{m: make(map[peer.ID]verdict), changed: make(chan struct{})}
}

func (v *verdicts) get(p peer.ID) book.State {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.m[p].state
}

// set records s.
func (v *verdicts) set(p peer.ID, s book.State) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.m[p] = verdict{state: s, at: time.Now()}
	v.notifyLocked()
}

// setIfAbsent records s only where p has no verdict yet.
func (v *verdicts) setIfAbsent(p peer.ID, s book.State) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.m[p]; ok {
		return false
	}
	v.m[p] = verdict{state: s, at: time.Now()}
	v.notifyLocked()
	return true
}

// forget drops p's verdict unless keep says to keep it.
func (v *verdicts) forget(p peer.ID, keep func(book.State) bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if d, ok := v.m[p]; ok && !keep(d.state) {
		delete(v.m, p)
	}
}

// prune drops the verdicts reached before cutoff of peers no longer
// connected, so strangers that came and went leave nothing behind, and
// returns whose it dropped.
func (v *verdicts) prune(cutoff time.Time, connected func(peer.ID) bool) (gone []peer.ID) {
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

func (v *verdicts) notifyLocked() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// wait returns the peer's verdict, waiting for one until ctx is done.
func (v *verdicts) wait(ctx context.Context, p peer.ID) (book.State, bool) {
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
