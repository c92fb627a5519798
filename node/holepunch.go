package node

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/overlay-net/overlay/node/book"
)

// puncher owns the node's DCUtR hole-punching service (libp2p's, fed with
// the addresses trusted peers observe, see observed). It starts the service
// at the first usable observation rather than with the host: the service
// looks for a public address only with a backoff growing to 5 s, and a
// relayed connection that arrives before it looks is never punched.
type puncher struct {
	log *slog.Logger

	mu     sync.Mutex
	svc    *holepunch.Service
	closed bool

	attempts, succeeded, failed atomic.Int64
}

// PunchStats counts hole punching since the node started.
type PunchStats struct {
	Attempts  int64 `json:"attempts"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
}

// startPunching starts the hole-punching service once; a node that cannot
// punch (WebSocket only, or listening nowhere) never starts it.
func (n *Node) startPunching() {
	p := n.punch
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.svc != nil || p.closed || n.cfg.WebSocketOnly || len(n.host.Network().ListenAddresses()) == 0 {
		return
	}
	ids, ok := n.host.(interface{ IDService() identify.IDService })
	if !ok {
		n.log.Warn("hole punching off: the libp2p host has no identify service")
		return
	}
	svc, err := holepunch.NewService(n.host, ids.IDService(), n.holePunchAddrs, n.holePunchTracer(p))
	if err != nil {
		n.log.Warn("hole punching off", "err", fmt.Errorf("start hole punching: %w", err))
		return
	}
	p.svc = svc
	n.log.Debug("hole punching on", "addrs", n.holePunchAddrs())
}

// holePunchAddrs are the public addresses offered in a hole punch: those
// trusted peers observe, and any public address the node listens on.
func (n *Node) holePunchAddrs() []ma.Multiaddr {
	listen := n.host.Network().ListenAddresses()
	out := n.observed.addrs(listen)
	direct, _ := book.SplitAddrs(n.host.Addrs())
	for _, a := range direct {
		if manet.IsPublicAddr(a) {
			out = append(out, a)
		}
	}
	return out
}

func (p *puncher) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.svc != nil {
		_ = p.svc.Close()
	}
}

func (p *puncher) stats() PunchStats {
	return PunchStats{Attempts: p.attempts.Load(), Succeeded: p.succeeded.Load(), Failed: p.failed.Load()}
}

// Trace logs the outcome of each hole punch: a success is worth a line,
// a failed attempt only at debug (libp2p makes at most 3 per relayed
// connection, so they cannot storm).
func (p *puncher) Trace(evt *holepunch.Event) {
	switch e := evt.Evt.(type) {
	case *holepunch.StartHolePunchEvt:
		p.attempts.Add(1)
	case *holepunch.EndHolePunchEvt:
		if e.Success {
			p.succeeded.Add(1)
			p.log.Info("direct connection by hole punching", "peer", evt.Remote, "took", e.EllapsedTime)
			return
		}
		p.failed.Add(1)
		p.log.Debug("hole punch attempt failed", "peer", evt.Remote, "took", e.EllapsedTime, "err", e.Error)
	case *holepunch.ProtocolErrorEvt:
		p.log.Debug("hole punch protocol error", "peer", evt.Remote, "err", e.Error)
	}
}

var _ holepunch.EventTracer = (*puncher)(nil)
