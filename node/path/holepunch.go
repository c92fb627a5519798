package path

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
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
	// punched is called after each successful punch, with the peer.
	punched func(peer.ID)
	// active is set at the first hole-punch event: the service is past its
	// wait for a public address, so DirectConnect cannot block on it.
	active atomic.Bool

	mu     sync.Mutex
	svc    *holepunch.Service
	closed bool
	tries  map[peer.ID][]time.Time // punches started by the node, for allow

	// pre opens the node's own NAT mapping before each punch (prepunch.go).
	pre *prePunch

	attempts, succeeded, failed atomic.Int64
}

// PunchStats counts hole punching since the node started (status shows it).
type PunchStats struct {
	Attempts  int64 `json:"attempts"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
	// PrePunches counts pre-punch packets sent (low-TTL, one per address
	// of the peer per punch exchange; prepunch.go).
	PrePunches int64 `json:"pre_punches"`
}

// startPunching starts the hole-punching service once; a node that cannot
// punch (WebSocket only, or listening nowhere) never starts it.
func (m *Manager) startPunching() {
	p := m.punch
	p.mu.Lock()
	defer p.mu.Unlock()
	h := m.cfg.Host
	if p.svc != nil || p.closed || m.cfg.WebSocketOnly || len(h.Network().ListenAddresses()) == 0 {
		return
	}
	ids, ok := h.(interface{ IDService() identify.IDService })
	if !ok {
		m.log.Warn("hole punching off: the libp2p host has no identify service")
		return
	}
	if m.cfg.Sockets != nil {
		// Leaning on quicreuse opening its sockets through Sockets.
		if _, udp := listenPorts(h.Network().ListenAddresses()); udp != 0 && m.cfg.Sockets.udpConn(udp) == nil {
			m.log.Warn("pre-punch over QUIC off: the QUIC listen socket was not opened through path.Sockets", "port", udp)
		}
	}
	svc, err := holepunch.NewService(h, ids.IDService(), m.holePunchAddrs, m.holePunchTracer(p),
		holepunch.WithAddrFilter(p.pre))
	if err != nil {
		m.log.Warn("hole punching off", "err", fmt.Errorf("start hole punching: %w", err))
		return
	}
	p.svc = svc
	m.log.Debug("hole punching on", "addrs", m.holePunchAddrs())
}

// holePunchTracer traces hole punches to et, and to libp2p's holepunch
// metrics when configured (one option: each replaces the other).
func (m *Manager) holePunchTracer(et holepunch.EventTracer) holepunch.Option {
	if m.cfg.HolePunchMetrics == nil {
		return holepunch.WithTracer(et)
	}
	return holepunch.WithMetricsAndEventTracer(m.cfg.HolePunchMetrics, et)
}

// holePunchAddrs are the public addresses offered in a hole punch: those
// trusted peers observe, and any public address the node listens on.
func (m *Manager) holePunchAddrs() []ma.Multiaddr {
	listen := m.cfg.Host.Network().ListenAddresses()
	out := m.observed.addrs(listen)
	direct, _ := book.SplitAddrs(m.cfg.Host.Addrs())
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

// PunchStats counts hole punching since the manager started.
func (m *Manager) PunchStats() PunchStats { return m.punch.stats() }

func (p *puncher) stats() PunchStats {
	return PunchStats{Attempts: p.attempts.Load(), Succeeded: p.succeeded.Load(), Failed: p.failed.Load(),
		PrePunches: p.pre.sent.Load()}
}

// Trace logs the outcome of each hole punch: a success is worth a line,
// a failed attempt only at debug (libp2p makes at most 3 per relayed
// connection, so they cannot storm).
func (p *puncher) Trace(evt *holepunch.Event) {
	p.active.Store(true)
	switch e := evt.Evt.(type) {
	case *holepunch.StartHolePunchEvt:
		p.attempts.Add(1)
	case *holepunch.EndHolePunchEvt:
		if e.Success {
			p.succeeded.Add(1)
			p.log.Info("direct connection by hole punching", "peer", evt.Remote, "took", e.EllapsedTime)
			if p.punched != nil {
				p.punched(evt.Remote)
			}
			return
		}
		p.failed.Add(1)
		p.log.Debug("hole punch attempt failed", "peer", evt.Remote, "took", e.EllapsedTime, "err", e.Error)
	case *holepunch.ProtocolErrorEvt:
		p.log.Debug("hole punch protocol error", "peer", evt.Remote, "err", e.Error)
	}
}

var _ holepunch.EventTracer = (*puncher)(nil)

// repunchAfter is how long after a punch, or after a direct path fell back
// to the relay, the node checks whether a direct connection is left.
const repunchAfter = time.Second

// maxRepunch bounds the punches the node starts itself for one peer within
// repunchWindow; libp2p's own (up to 3 attempts per relayed connection)
// come on top.
const (
	maxRepunch    = 3
	repunchWindow = 10 * time.Minute
)

// repunch tries another hole punch to p soon, if by then p is reached only
// through a relay. Two cases need it. A punch can make both a TCP and a
// QUIC connection at once, and each side may drop the one the other kept,
// leaving none (docs/BENCHMARKS.md "NAT lab"). And a direct
// connection that died (a WAN link down) leaves the peers relayed, while
// libp2p punches only when a relayed connection is new. Only the side that
// accepted the relayed connection can start a punch (DCUtR's rule), so the
// other does nothing.
func (m *Manager) repunch(p peer.ID) {
	if !m.punch.active.Load() {
		return
	}
	m.goRun(func() {
		wait := repunchAfter
		for {
			t := time.NewTimer(wait)
			select {
			case <-m.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if direct, _ := m.connsByPath(p); direct || !m.hasInboundRelayed(p) || !m.punch.allow(p) {
				return
			}
			m.punch.mu.Lock()
			svc := m.punch.svc
			m.punch.mu.Unlock()
			if svc == nil {
				return
			}
			m.log.Debug("hole punching again", "peer", p)
			err := svc.DirectConnect(p)
			if err == nil {
				return
			}
			// A link still down fails the punch: try again later, within allow's bound.
			m.log.Debug("hole punch again failed", "peer", p, "err", err)
			wait *= 5
		}
	})
}

// allow counts a punch the node starts itself for p, refusing past
// maxRepunch within repunchWindow.
func (p *puncher) allow(id peer.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	now := time.Now()
	if p.tries == nil {
		p.tries = map[peer.ID][]time.Time{}
	}
	recent := p.tries[id][:0]
	for _, at := range p.tries[id] {
		if now.Sub(at) < repunchWindow {
			recent = append(recent, at)
		}
	}
	if len(recent) >= maxRepunch {
		p.tries[id] = recent
		return false
	}
	p.tries[id] = append(recent, now)
	return true
}

func (m *Manager) hasInboundRelayed(p peer.ID) bool {
	_, relayed := m.connsByPath(p)
	for _, c := range relayed {
		if c.Stat().Direction == network.DirInbound {
			return true
		}
	}
	return false
}
