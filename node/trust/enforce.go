package trust

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/events"
)

// tellTimeout bounds the exchange that hands a revoked peer the list that
// revokes it, before its connections are closed.
const tellTimeout = time.Second

// Enforcer closes the connections of revoked peers: of every peer
// connected when a new list revokes it, and of any peer the handshake
// admits while revoked (the handshake's own check, Store.CheckPeer, refuses
// it first when the node wires it). On a relay, closing a peer's
// connections ends its reservation and its circuits: go-libp2p's relay
// drops a reservation when its peer disconnects, and a circuit is a pair
// of streams on the two ends' connections.
type Enforcer struct {
	h    host.Host
	s    *Store
	log  *slog.Logger
	tell func(ctx context.Context, p peer.ID) error

	closed atomic.Int64
	unsub  func()
	sub    event.Subscription
	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewEnforcer starts enforcing s's revocations on h until Close. tell, when
// set, hands a peer about to be cut off the list that revokes it, so that
// it learns why (Gossip.Sync).
func NewEnforcer(h host.Host, s *Store, log *slog.Logger, tell func(ctx context.Context, p peer.ID) error) (*Enforcer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Enforcer{h: h, s: s, log: log, tell: tell, wake: make(chan struct{}, 1)}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	sub, err := h.EventBus().Subscribe(new(events.EvtVerdict))
	if err != nil {
		return nil, err
	}
	e.sub = sub
	e.unsub = s.Subscribe(func(c Change) {
		if c.Kind != cert.KindRevocations {
			return
		}
		select {
		case e.wake <- struct{}{}:
		default:
		}
	})
	e.goRun(e.loop)
	if s.Revocations() != nil {
		e.wake <- struct{}{}
	}
	return e, nil
}

func (e *Enforcer) goRun(fn func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		fn()
	}()
}

// Close stops enforcing and waits for the closes under way.
func (e *Enforcer) Close() {
	e.unsub()
	e.cancel()
	e.sub.Close()
	e.wg.Wait()
}

// Closed counts the peers whose connections were closed because they are
// revoked.
func (e *Enforcer) Closed() int64 { return e.closed.Load() }

func (e *Enforcer) loop() {
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.wake:
			e.sweep()
		case ev, ok := <-e.sub.Out():
			if !ok {
				return
			}
			v := ev.(events.EvtVerdict)
			if v.State != events.StateMember {
				continue
			}
			if err := e.s.Revoked(v.Peer); err != nil {
				e.cut(v.Peer, err, false)
			}
		}
	}
}

// sweep cuts off every connected peer the list held revokes.
func (e *Enforcer) sweep() {
	if err := e.s.Revoked(e.h.ID()); err != nil {
		e.log.Error("the CA revoked this node: members will refuse it", "err", err)
	}
	for _, p := range e.h.Network().Peers() {
		if err := e.s.Revoked(p); err != nil {
			e.cut(p, err, true)
		}
	}
}

// cut closes p's connections, after handing it the list when tell is set
// and told is asked for. It returns at once; the close runs in the
// background.
func (e *Enforcer) cut(p peer.ID, why error, told bool) {
	e.goRun(func() {
		if told && e.tell != nil {
			ctx, cancel := context.WithTimeout(e.ctx, tellTimeout)
			_ = e.tell(ctx, p)
			cancel()
		}
		_ = e.h.Network().ClosePeer(p)
		e.closed.Add(1)
		e.log.Info("closed the connections of a revoked peer", "peer", p, "reason", why)
	})
}
