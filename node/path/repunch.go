package path

import (
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
)

// repunchBackoff is the wait before each punch keepPunching starts, the
// last repeated. The first waits are short for a punch that succeeded but
// left no direct connection (it can make a TCP and a QUIC connection at
// once, and each side may drop the one the other kept). The later ones
// outlast the NAT state a failed punch leaves behind (Linux conntrack
// forgets an unanswered UDP flow after 30 s, a reset TCP one after 10 s),
// which would make a punch on the same ports fail the same way, and which
// every punch on those ports refreshes.
var repunchBackoff = []time.Duration{
	time.Second, 5 * time.Second, 35 * time.Second, time.Minute,
	2 * time.Minute, 5 * time.Minute, 10 * time.Minute,
}

// maxRepunch bounds the punches the node starts itself for one peer within
// repunchWindow; libp2p's own (up to 3 attempts per new relayed
// connection) come on top. Each is one DCUtR exchange (up to 3 attempts)
// over the relay.
const (
	maxRepunch    = 10
	repunchWindow = time.Hour
)

// repunch makes sure a keepPunching loop runs for p.
func (m *Manager) repunch(p peer.ID) {
	if !m.punch.active.Load() || !m.punch.keep(p) {
		return
	}
	m.goRun(func() {
		defer m.punch.unkeep(p)
		m.keepPunching(p)
	})
}

// keepPunching punches p again, with repunchBackoff, for as long as p is
// reached only through a relay and allow lets it. Three cases need it. A
// punch can succeed and leave no direct connection (see repunchBackoff); a
// direct connection that died (a WAN link down) leaves the peers relayed,
// while libp2p punches only when a relayed connection is new; and a failed
// punch may succeed later, once the NAT state it left has expired. Only
// the side that accepted the relayed connection can start a punch (DCUtR's
// rule): on the other side the loop ends at once.
func (m *Manager) keepPunching(p peer.ID) {
	for i := 0; ; i++ {
		t := time.NewTimer(repunchBackoff[min(i, len(repunchBackoff)-1)])
		select {
		case <-m.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if direct, _ := m.connsByPath(p); direct || !m.hasInboundRelayed(p) {
			return
		}
		m.punch.mu.Lock()
		svc := m.punch.svc
		m.punch.mu.Unlock()
		if svc == nil {
			return
		}
		if m.hardNAT() {
			forgetUDP(m.cfg.Host, p) // see prePunch.FilterRemote
		}
		err := tryDirectConnect(svc, p, m.punch)
		switch {
		case errors.Is(err, errRepunchBound):
			m.log.Debug("hole punching given up for now", "peer", p, "max", maxRepunch, "within", repunchWindow)
			return
		case errors.Is(err, holepunch.ErrHolePunchActive):
			i-- // libp2p's own punch is still running: wait as before
		case err == nil:
			i = -1 // check soon that the connection was kept
		default:
			m.log.Debug("hole punch again failed", "peer", p, "err", err)
		}
	}
}

var errRepunchBound = errors.New("repunch bound reached")

// tryDirectConnect starts a punch to p if allow lets it; one that does not
// start (libp2p's own is running) is not counted.
func tryDirectConnect(svc *holepunch.Service, p peer.ID, pu *puncher) error {
	if !pu.allow(p) {
		return errRepunchBound
	}
	err := svc.DirectConnect(p)
	if errors.Is(err, holepunch.ErrHolePunchActive) {
		pu.refund(p)
	}
	return err
}

func (p *puncher) keep(id peer.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if _, ok := p.keeping[id]; ok {
		return false
	}
	if p.keeping == nil {
		p.keeping = map[peer.ID]struct{}{}
	}
	p.keeping[id] = struct{}{}
	return true
}

func (p *puncher) unkeep(id peer.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.keeping, id)
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
	recent := within(p.tries[id], now, repunchWindow)
	if len(recent) >= maxRepunch {
		p.tries[id] = recent
		return false
	}
	p.tries[id] = append(recent, now)
	return true
}

// refund forgets the newest punch allow counted for p.
func (p *puncher) refund(id peer.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.tries[id]); n > 0 {
		p.tries[id] = p.tries[id][:n-1]
	}
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

// within keeps, in place, the times of ts less than window before now: a
// sliding window of attempts, as the punch and spray bounds count them.
func within(ts []time.Time, now time.Time, window time.Duration) []time.Time {
	recent := ts[:0]
	for _, at := range ts {
		if now.Sub(at) < window {
			recent = append(recent, at)
		}
	}
	return recent
}
