package path

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/node/book"
)

// retiring is the set of peers whose relayed connections are being watched
// for closing, so each has one watcher.
type retiring struct {
	mu sync.Mutex
	m  map[peer.ID]struct{}
}

// watchPaths moves traffic off a relay once a peer is reached directly:
// the message stream moves at once, and the relayed connection closes
// once it has carried nothing for RelayedGrace, freeing the relay's slot
// and bandwidth. Should the direct connection die, the next message opens
// a relayed one again.
func (m *Manager) watchPaths() error {
	return m.follow(new(events.EvtPath), func(e any) {
		ev := e.(events.EvtPath)
		if ev.Path == book.PathRelayed && ev.Prev == book.PathDirect {
			m.repunch(ev.Peer)
		}
		if ev.Path == book.PathRelayed {
			m.maybeSpray(ev.Peer)
		}
		if ev.Path != book.PathDirect {
			return
		}
		if m.cfg.Repath != nil {
			m.cfg.Repath(ev.Peer)
		}
		if m.cfg.RelayedGrace > 0 {
			m.retireRelayed(ev.Peer)
		}
	})
}

func (m *Manager) retireRelayed(p peer.ID) {
	m.retiring.mu.Lock()
	defer m.retiring.mu.Unlock()
	if _, ok := m.retiring.m[p]; ok {
		return
	}
	m.retiring.m[p] = struct{}{}
	m.goRun(func() {
		defer func() {
			m.retiring.mu.Lock()
			delete(m.retiring.m, p)
			m.retiring.mu.Unlock()
		}()
		m.closeIdleRelayed(p)
	})
}

// closeIdleRelayed closes p's relayed connections once each has had no
// stream for RelayedGrace, for as long as a direct connection lasts.
//
// While a relayed connection still carries streams, Repath is asked again
// every repathEvery: a stream the peer reopened at the moment the direct
// connection came up (before this side's swarm held it) lands on the
// relayed connection after the first Repath, and would keep it busy for
// good.
func (m *Manager) closeIdleRelayed(p peer.ID) {
	tick := min(time.Second, m.cfg.RelayedGrace/2)
	t := time.NewTicker(tick)
	defer t.Stop()
	repathEvery := max(time.Second, m.cfg.RelayedGrace)
	lastRepath := time.Now() // watchPaths called Repath as it started this
	idleSince := map[network.Conn]time.Time{}
	for {
		select {
		case <-m.ctx.Done():
			return
		case now := <-t.C:
			direct, relayed := m.connsByPath(p)
			if !direct || len(relayed) == 0 {
				return
			}
			busy := false
			for _, c := range relayed {
				if len(c.GetStreams()) > 0 {
					busy = true
					delete(idleSince, c)
					continue
				}
				since, ok := idleSince[c]
				if !ok {
					idleSince[c] = now
					continue
				}
				if now.Sub(since) >= m.cfg.RelayedGrace {
					m.log.Debug("relayed connection closed: the peer is reached directly", "peer", p, "via", c.RemoteMultiaddr())
					_ = c.Close()
				}
			}
			if busy && m.cfg.Repath != nil && now.Sub(lastRepath) >= repathEvery {
				lastRepath = now
				m.cfg.Repath(p)
			}
		}
	}
}

// connsByPath reports whether a live direct connection to p exists, and
// p's live relayed connections.
func (m *Manager) connsByPath(p peer.ID) (direct bool, relayed []network.Conn) {
	for _, c := range m.cfg.Host.Network().ConnsToPeer(p) {
		switch {
		case c.IsClosed():
		case book.IsRelayed(c.RemoteMultiaddr()):
			relayed = append(relayed, c)
		default:
			direct = true
		}
	}
	return direct, relayed
}

// checkDirect runs when p comes in through a relay while a direct
// connection to it exists: p would not take the relay if the direct path
// worked for it. A direct connection that dies silently (a WAN link down)
// is noticed by the side sending on it, not by one that only receives, so
// this side checks its own and closes those that no longer answer; its path
// then falls back to the relay, which starts a new hole punch (repunch).
func (m *Manager) checkDirect(p peer.ID) {
	if m.cfg.Probe == nil {
		return
	}
	for _, c := range m.cfg.Host.Network().ConnsToPeer(p) {
		if c.IsClosed() || book.IsRelayed(c.RemoteMultiaddr()) {
			continue
		}
		if err := m.cfg.Probe(m.ctx, c); err != nil && m.ctx.Err() == nil {
			m.log.Info("direct connection stopped answering, closing it", "peer", p, "via", c.RemoteMultiaddr(), "err", err)
			_ = c.Close()
		}
	}
}
