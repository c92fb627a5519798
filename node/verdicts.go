package node

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// verdicts holds this session's handshake outcome per peer. Unlike the book,
// it starts empty at every start, so a verdict from an earlier run is never
// trusted. Waiters wake on every change.
type verdicts struct {
	mu      sync.Mutex
	m       map[peer.ID]State
	changed chan struct{} // closed and replaced on every change
}

func newVerdicts() *verdicts {
	return &verdicts{m: make(map[peer.ID]State), changed: make(chan struct{})}
}

func (v *verdicts) get(p peer.ID) State {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.m[p]
}

// set records s and returns the verdict it replaced.
func (v *verdicts) set(p peer.ID, s State) (prev State) {
	v.mu.Lock()
	defer v.mu.Unlock()
	prev = v.m[p]
	v.m[p] = s
	v.notifyLocked()
	return prev
}

// setIfAbsent records s only where p has no verdict yet.
func (v *verdicts) setIfAbsent(p peer.ID, s State) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.m[p]; ok {
		return false
	}
	v.m[p] = s
	v.notifyLocked()
	return true
}

// forget drops p's verdict unless keep says to keep it.
func (v *verdicts) forget(p peer.ID, keep func(State) bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.m[p]; ok && !keep(s) {
		delete(v.m, p)
	}
}

func (v *verdicts) notifyLocked() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// wait returns the peer's verdict, waiting for one until ctx is done.
func (v *verdicts) wait(ctx context.Context, p peer.ID) (State, bool) {
	for {
		v.mu.Lock()
		s, ok := v.m[p]
		ch := v.changed
		v.mu.Unlock()
		if ok {
			return s, true
		}
		select {
		case <-ctx.Done():
			return "", false
		case <-ch:
		}
	}
}
