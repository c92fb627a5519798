package path

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

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
	// punched is called after each punch, with the peer: a success may
	// leave no direct connection, a failure leaves the peer relayed
	// (keepPunching).
	punched func(peer.ID)
	// active is set at the first hole-punch event: the service is past its
	// wait for a public address, so DirectConnect cannot block on it.
	active atomic.Bool

	mu     sync.Mutex
	svc    *holepunch.Service
	closed bool
	tries  map[peer.ID][]time.Time // punches started by the node, for allow
	// keeping: peers with a keepPunching loop running.
	keeping map[peer.ID]struct{}

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
	// Spray counts port spraying against a NAT that maps per destination
	// (spray.go).
	Spray SprayStats `json:"spray"`
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
		if udp := listenUDPPort(h.Network().ListenAddresses()); udp != 0 && m.cfg.Sockets.udpConn(udp) == nil {
			m.log.Warn("pre-punch over QUIC off: the QUIC listen socket was not opened through path.Sockets", "port", udp)
		}
	}
	// The hooks are set before the service starts calling FilterRemote.
	p.pre.hard = m.hardNAT
	p.pre.loud = m.spray.noteLoud
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
func (m *Manager) PunchStats() PunchStats {
	st := m.punch.stats()
	st.Spray = m.SprayStats()
	return st
}

func (p *puncher) stats() PunchStats {
	return PunchStats{Attempts: p.attempts.Load(), Succeeded: p.succeeded.Load(), Failed: p.failed.Load(),
		PrePunches: p.pre.sent.Load()}
}

// Trace logs the outcome of each hole punch: a success is worth a line,
// a failed attempt only at debug (libp2p makes at most 3 per relayed
// connection, and keepPunching's are bounded, so they cannot storm).
func (p *puncher) Trace(evt *holepunch.Event) {
	p.active.Store(true)
	recordPunch(p, evt)
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
		if p.punched != nil {
			p.punched(evt.Remote)
		}
	case *holepunch.ProtocolErrorEvt:
		p.log.Debug("hole punch protocol error", "peer", evt.Remote, "err", e.Error)
	}
}

var _ holepunch.EventTracer = (*puncher)(nil)
