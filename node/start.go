package node

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/messaging"
	"github.com/overlay-net/overlay/node/metrics"
	"github.com/overlay-net/overlay/node/path"
	"github.com/overlay-net/overlay/node/topics"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
	"github.com/overlay-net/overlay/relay/client"
	"github.com/overlay-net/overlay/relay/liveness"
)

// startMembership runs the handshake on every connection and follows the
// events that keep members' verdicts and addresses current.
func (n *Node) startMembership() error {
	n.hs = n.handshakes()
	n.host.SetStreamHandler(protocol.HandshakeID, n.hs.Respond)
	n.certs.Start(n.ctx, n.host, n.verdicts, n.goRun, func(c network.Conn) { n.hs.Initiate(n.ctx, c) })
	n.notif = &network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { n.onConnected(c) },
		DisconnectedF: func(_ network.Network, c network.Conn) { n.onDisconnected(c) },
	}
	n.host.Network().Notify(n.notif)
	if err := n.watchIdentify(); err != nil {
		return fmt.Errorf("watch identify: %w", err)
	}
	if err := n.watchRelays(); err != nil {
		return fmt.Errorf("watch relay events: %w", err)
	}
	return nil
}

// startMessaging starts member messages (node/messaging) and, unless
// DisableTopics, group messaging (node/topics).
func (n *Node) startMessaging() error {
	n.msgr = messaging.New(n.host, n.policed(), n.log)
	if n.cfg.DisableTopics {
		return nil
	}
	// A public node relays the topics its members follow.
	ts, err := topics.New(topics.Config{Host: n.host, Members: n, Logger: n.log, Limits: n.cfg.Topics,
		Router: n.cfg.Role == protocol.RolePublic, Policy: n.topicPolicy()})
	if err != nil {
		return err
	}
	n.topics = ts
	return nil
}

// startMetrics starts the overlay's own metrics, when the node has a
// registry.
func (n *Node) startMetrics() error {
	if n.metrics == nil {
		return nil
	}
	if err := n.metrics.Start(n.host.EventBus(), n.msgr, n.metricsState()); err != nil {
		return fmt.Errorf("start metrics: %w", err)
	}
	return nil
}

// startPerf answers perf runs: plain (any libp2p peer) and resumable.
func (n *Node) startPerf() error {
	n.host.SetStreamHandler(protocol.PerfID, protocol.HandlePerf)
	n.host.SetStreamHandler(protocol.PerfResumeID, n.sessions.HandlePerf)
	return nil
}

// startBackground starts the peer book's saving (with a data directory)
// and the periodic prune.
func (n *Node) startBackground() error {
	if n.cfg.DataDir != "" {
		n.goRun(func() { n.book.SaveLoop(n.ctx, n.bookPath(), n.log) })
	}
	n.goRun(n.pruneLoop)
	return nil
}

// startNetCheck starts netcheck on the host, once it listens.
func (n *Node) startNetCheck() error { return n.nc.Start(n.host) }

func (n *Node) startRole() error {
	switch n.cfg.Role {
	case protocol.RolePublic:
		ropts := n.relayGuard()
		if reg := n.regOrNil(); reg != nil {
			ropts = append(ropts, relay.WithRegisterer(reg))
		}
		svc, err := relay.New(n.host, n.cfg.Relay, n, n.refusals, append(ropts, relay.WithVouch(n.certs.VouchFunc()))...)
		if err != nil {
			return err
		}
		n.relaySvc = svc
		n.strangers = relay.NewStrangers(n.host, n.cfg.Relay, func(p peer.ID) bool {
			return n.verdicts.Get(p) == book.StateMember
		}, n.refusals, maxHeldStrangers)
		n.goRun(func() { relay.WatchTrims(n.ctx, n.host.ConnManager(), n.refusals) })
		// A member that reconnects has given up on its older connection,
		// which this side may still think alive (relay/liveness).
		n.goRun(func() {
			d := liveness.NewDoubter(n.host, liveness.DoubtTimeout, n.log)
			<-n.ctx.Done()
			d.Close()
		})
	case protocol.RolePrivate:
		if len(n.cfg.Relays) == 0 {
			return nil
		}
		kc := n.cfg.Keeper
		kc.Relays, kc.Logger, kc.Admission = n.cfg.Relays, n.log, n
		k, err := client.New(n.host, kc)
		if err != nil {
			return err
		}
		n.keeper.Store(k)
		k.Start()
	}
	return nil
}

// startPaths starts path management (node/path): path events, observed
// addresses, hole punching, migration off relays, reachability.
func (n *Node) startPaths() error {
	pc := path.Config{Host: n.host, Book: n.book, Logger: n.log, WebSocketOnly: n.cfg.WebSocketOnly,
		RelayedGrace: n.cfg.RelayedGrace, Trusted: n.trustsObservation, Probe: messaging.Probe,
		// The messenger is made later in start, before any connection.
		Repath: func(p peer.ID) {
			n.msgr.Repath(p)
			if n.topics != nil {
				n.topics.Repath(p)
			}
		}}
	if n.metrics != nil {
		pc.HolePunchMetrics = n.metrics.HolePunch
	}
	pc.Sockets = n.sockets
	n.sprayConfig(&pc)
	m, err := path.New(pc)
	if err != nil {
		return err
	}
	n.paths = m
	n.observePunches()
	return nil
}

// metricsState is what the metrics' gauges read at each scrape.
func (n *Node) metricsState() metrics.State {
	return metrics.State{
		Peers:        n.book.List,
		Reservations: func() int { return len(n.Reservations()) },
		Certs:        n.certs,
		Relay: func() (relay.Stats, bool) {
			if n.relaySvc == nil {
				return relay.Stats{}, false
			}
			return n.relaySvc.Stats(), true
		},
		NetCheck: n.nc.Gauge(),
	}
}

// maxHeldStrangers bounds the strangers a relay holds during their grace
// (relay.DefaultMaxHeldStrangers; tests lower it).
var maxHeldStrangers int64 = relay.DefaultMaxHeldStrangers
