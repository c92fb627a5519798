package relay

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// DefaultMaxHeldStrangers bounds the strangers waiting out their grace:
// past it, a new one is cut at once. The relay's inbound connection limit
// keeps 256 slots beyond its members' (LimitsFor); strangers that connect
// faster than the grace lets them go must not take all of them.
const DefaultMaxHeldStrangers = 128

// Strangers closes the inbound connections of peers the relay does not
// serve (neither members nor, on an open or allowlist relay, served
// otherwise) once Config.StrangerGrace has passed. Without it, peers that
// connect and stay hold the relay's inbound connection slots for good, and
// no new member can join. Outbound connections are the node's own choice
// and stay.
type Strangers struct {
	h        host.Host
	cfg      Config
	isMember func(peer.ID) bool
	ref      *Refusals
	max      int64
	held     atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex // orders wg.Add before Close's Wait
	closed bool
	wg     sync.WaitGroup
}

// NewStrangers returns the stranger handling of a relay on h. isMember
// reports a peer's verdict now, without waiting; max bounds the strangers
// held at once (DefaultMaxHeldStrangers). Refusals go to ref.
func NewStrangers(h host.Host, cfg Config, isMember func(peer.ID) bool, ref *Refusals, max int64) *Strangers {
	if ref == nil {
		ref = NewRefusals(nil)
	}
	s := &Strangers{h: h, cfg: cfg, isMember: isMember, ref: ref, max: max}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Drop closes p's inbound connections after the grace, unless p is a
// member by then or the relay serves it. A zero grace keeps strangers.
func (s *Strangers) Drop(p peer.ID) {
	grace := s.cfg.StrangerGrace
	if grace == 0 || s.cfg.Serves(p) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.held.Add(1) > s.max {
		grace = 0
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.held.Add(-1)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if s.isMember(p) {
			return
		}
		var inbound []network.Conn
		for _, c := range s.h.Network().ConnsToPeer(p) {
			if c.Stat().Direction == network.DirInbound {
				inbound = append(inbound, c)
			}
		}
		// Counted before the close, so whoever sees the connection end
		// (status, a test) also sees the refusal.
		if len(inbound) > 0 {
			s.ref.Add("stranger-grace")
		}
		for _, c := range inbound {
			c.Close()
		}
	}()
}

// Close stops the timers and waits for them.
func (s *Strangers) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}
