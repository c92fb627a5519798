package node

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/messaging"
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
func (n *Node) watchPaths() error {
	n.retiring = &retiring{m: map[peer.ID]struct{}{}}
	return n.follow(new(events.EvtPath), func(e any) {
		ev := e.(events.EvtPath)
		if ev.Path == book.PathRelayed && ev.Prev == book.PathDirect {
			n.repunch(ev.Peer)
		}
		if ev.Path != book.PathDirect {
			return
		}
		n.msgr.Repath(ev.Peer)
		if n.cfg.RelayedGrace > 0 {
			n.retireRelayed(ev.Peer)
		}
	})
}

func (n *Node) retireRelayed(p peer.ID) {
	n.retiring.mu.Lock()
	defer n.retiring.mu.Unlock()
	if _, ok := n.retiring.m[p]; ok {
		return
	}
	n.retiring.m[p] = struct{}{}
	n.goRun(func() {
		defer func() {
			n.retiring.mu.Lock()
			delete(n.retiring.m, p)
			n.retiring.mu.Unlock()
		}()
		n.closeIdleRelayed(p)
	})
}

// closeIdleRelayed closes p's relayed connections once each has had no
// stream for RelayedGrace, for as long as a direct connection lasts.
func (n *Node) closeIdleRelayed(p peer.ID) {
	tick := min(time.Second, n.cfg.RelayedGrace/2)
	t := time.NewTicker(tick)
	defer t.Stop()
	idleSince := map[network.Conn]time.Time{}
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			direct, relayed := n.connsByPath(p)
			if !direct || len(relayed) == 0 {
				return
			}
			for _, c := range relayed {
				if len(c.GetStreams()) > 0 {
					delete(idleSince, c)
					continue
				}
				since, ok := idleSince[c]
				if !ok {
					idleSince[c] = now
					continue
				}
				if now.Sub(since) >= n.cfg.RelayedGrace {
					n.log.Debug("relayed connection closed: the peer is reached directly", "peer", p, "via", c.RemoteMultiaddr())
					_ = c.Close()
				}
			}
		}
	}
}

// connsByPath reports whether a live direct connection to p exists, and
// p's live relayed connections.
func (n *Node) connsByPath(p peer.ID) (direct bool, relayed []network.Conn) {
	for _, c := range n.host.Network().ConnsToPeer(p) {
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
func (n *Node) checkDirect(p peer.ID) {
	for _, c := range n.host.Network().ConnsToPeer(p) {
		if c.IsClosed() || book.IsRelayed(c.RemoteMultiaddr()) {
			continue
		}
		if err := messaging.Probe(n.ctx, c); err != nil && n.ctx.Err() == nil {
			n.log.Info("direct connection stopped answering, closing it", "peer", p, "via", c.RemoteMultiaddr(), "err", err)
			_ = c.Close()
		}
	}
}
