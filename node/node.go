// Package node builds an overlay node: it owns the libp2p host's
// construction and lifecycle, and wires to it the handshake
// (node/handshake), the peer book (node/book), paths (node/path),
// messaging, tunnels, the DHT, metrics, and either the relay server
// (public, relay/) or the reservation keeper (private, relay/client).
package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/overlay-net/overlay/internal/wstransport"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/certs"
	"github.com/overlay-net/overlay/node/dht"
	"github.com/overlay-net/overlay/node/handshake"
	"github.com/overlay-net/overlay/node/limits"
	"github.com/overlay-net/overlay/node/messaging"
	"github.com/overlay-net/overlay/node/metrics"
	"github.com/overlay-net/overlay/node/muxer"
	"github.com/overlay-net/overlay/node/netcheck"
	"github.com/overlay-net/overlay/node/path"
	"github.com/overlay-net/overlay/node/resume"
	"github.com/overlay-net/overlay/node/topics"
	"github.com/overlay-net/overlay/node/trust"
	"github.com/overlay-net/overlay/node/tun"
	"github.com/overlay-net/overlay/node/tunnel"
	"github.com/overlay-net/overlay/node/verdict"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
	"github.com/overlay-net/overlay/relay/client"
)

// bookFileName is the peer book's file in the data directory.
const bookFileName = "peers.json"

// Node is a running overlay node. Close stops everything it started.
type Node struct {
	cfg  Config
	log  *slog.Logger
	host host.Host
	book *book.Book
	// unbound are the listen addresses that did not bind (listen.go).
	unbound []string

	relaySvc  *relay.Service
	refusals  *relay.Refusals  // public: what limits refused, for status and logs
	gate      *relay.Gate      // public: bounds connections before their security handshake
	strangers *relay.Strangers // public: closes strangers' connections after a grace
	keeper    atomic.Pointer[client.Keeper]
	verdicts  *verdict.Table
	certs     *certs.Manager // nil outside certificate mode
	hs        *handshake.Runner
	paths     *path.Manager
	sockets   *path.Sockets // private, with QUIC: the host's QUIC sockets
	relays    *client.Standing
	notif     *network.NotifyBundle
	msgr      *messaging.Messenger
	tunnels   *tunnel.Service
	sessions  *resume.Manager // resumable sessions of tunnels and perf
	trust     *trust.Store    // nil without Config.CAPub (trust.go)
	trustSvc  *trust.Service  // spreads and enforces trust's documents
	topics    *topics.Service // nil with DisableTopics
	tun       *tun.Interface  // nil without Config.TUN (tun.go)
	em        emitters

	dht *dht.DHT
	nc  *netcheck.Service

	metrics *metrics.Metrics // nil without a registry

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// New validates cfg, then builds and starts a node.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, verdicts: verdict.New(), relays: client.NewStanding()}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.nc = n.newNetcheck()
	err := n.loadBook()
	if err == nil {
		err = n.openTrust()
	}
	if err == nil {
		cfg.Certs.Revoked = n.revokedHook(cfg.Certs.Revoked)
		n.certs, err = certs.Open(cfg.Certs, cfg.Key, n.book, n.log)
	}
	if err != nil {
		return nil, err
	}
	n.joinTrust()
	opts, err := n.hostOptions()
	if err != nil {
		return nil, err
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	n.host = h
	if err := n.start(); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// wsConfig is the WebSocket transport's configuration: the node's, logging
// to the node's logger, with refusals over its pending caps counted with
// the relay's other limits.
func (n *Node) wsConfig() wstransport.Config {
	c := n.cfg.WebSocket
	if n.gate != nil {
		// The gate sees these connections first and closes the oldest
		// silent one for a newcomer; the transport's caps refuse the
		// newcomer instead, so they must lie above the gate's, or they
		// would refuse honest peers the gate lets in (docs/BENCHMARKS.md).
		l := relay.LimitsFor(n.cfg.Relay)
		c.MaxPending = max(cmp.Or(c.MaxPending, wstransport.DefaultMaxPending), 2*l.Pending)
		c.MaxPendingPerIP = max(cmp.Or(c.MaxPendingPerIP, wstransport.DefaultMaxPendingPerIP), 2*l.PendingPerIP)
	}
	c.Logger = n.log
	c.Refused = func(limit string) {
		// Set before the host listens (relayLimits), nil on a private node.
		if r := n.refusals; r != nil {
			r.Add(limit)
		}
	}
	return c
}

func (n *Node) hostOptions() ([]libp2p.Option, error) {
	if n.cfg.Role == protocol.RolePublic {
		n.refusals = relay.NewRefusals(n.log)
		n.gate = relay.LimitsFor(n.cfg.Relay).Gate(n.refusals)
	}
	opts := []libp2p.Option{
		libp2p.Identity(n.cfg.Key),
		libp2p.UserAgent(Agent),
		libp2p.EnableRelay(),
	}
	if reg := n.cfg.Metrics; reg != nil {
		// go-libp2p's own collectors (swarm, identify, AutoNAT, event bus,
		// resource manager) go to the node's registry too.
		n.metrics = metrics.New(reg)
		opts = append(opts, libp2p.PrometheusRegisterer(reg))
	}
	opts = append(opts, n.transports()...)
	opts = append(opts, n.autonatOptions()...)
	// The node listens once it is ready (start): a peer that connects
	// earlier would find no handshake handler, take this node for a stock
	// one, and be refused for as long as its connection lasts (a relay
	// restarting while its peers retry every 300 ms).
	opts = append(opts, libp2p.NoListenAddrs)
	if n.cfg.Role == protocol.RolePrivate {
		// A private node keeps libp2p's own limits (autoscaled from memory,
		// hundreds of connections): it holds a few relays and members. Hole
		// punching is the node's own (node/path), not libp2p's.
		// Tunnels get room beyond those limits (node/limits).
		extra, err := metrics.ResourceManagerOptions(n.regOrNil())
		if err != nil {
			return nil, err
		}
		rm, err := limits.Private(extra...)
		if err != nil {
			return nil, err
		}
		return append(opts, rm,
			libp2p.AddrsFactory(func(addrs []ma.Multiaddr) []ma.Multiaddr {
				direct, _ := book.SplitAddrs(addrs)
				return append(direct, n.RelayedAddrs()...)
			})), nil
	}
	rl, err := n.relayLimits()
	if err != nil {
		return nil, err
	}
	// Private peers learn from their relays whether they are reachable.
	opts = append(opts, libp2p.EnableNATService())
	return append(opts, rl...), nil
}

// transports are the node's libp2p transports. A public node's TCP and
// WebSocket listeners pass through its Gate, so connections that never
// finish their security handshake cannot crowd out newcomers.
func (n *Node) transports() []libp2p.Option {
	// Our own WebSocket transport, wire-compatible with go-libp2p's:
	// buffers that hold a whole TLS record, pooled so idle connections hold
	// none (docs/datapath.md). The gate sees its connections from the TCP
	// accept until their security handshake ends, and takes one whose
	// upgrade is followed by silence for silent (watchedConn.Upgraded).
	ws := func(u transport.Upgrader, rm network.ResourceManager) (*wstransport.Transport, error) {
		if n.gate != nil {
			u = n.gate.Upgrader(u)
		}
		return wstransport.New(u, rm, wstransport.WithConfig(n.wsConfig()))
	}
	tcpT := any(tcp.NewTCPTransport)
	if n.gate != nil {
		tcpT = n.gate.TCP
	}
	opts := []libp2p.Option{libp2p.Transport(ws), muxer.Option()}
	if !n.cfg.WebSocketOnly {
		opts = append(opts, libp2p.Transport(tcpT))
	}
	if len(n.cfg.PSK) > 0 {
		// libp2p's QUIC refuses a private network: its handshake is
		// QUIC's own TLS, with no room for the PSK layer.
		return append(opts, libp2p.PrivateNetwork(n.cfg.PSK))
	}
	if !n.cfg.WebSocketOnly {
		// go-libp2p's QUIC transport; netcheck keeps its socket manager.
		opts = append(opts, libp2p.Transport(n.nc.QUICTransport()))
		if n.cfg.Role == protocol.RolePrivate {
			// Hole punching sends its own packets from the QUIC socket.
			n.sockets = path.NewSockets()
			opts = append(opts, n.sockets.QUICReuse(n.regOrNil()))
		}
	}
	return opts
}

// autonatOptions run AutoNAT v2, which checks each address on its own and serves
// the check to others; reachability comes to status through events. A
// WebSocket-only node listens nowhere, so it has nothing to check, and
// AutoNAT v2's second libp2p host would double what the node costs to
// start (half of a load generator's CPU in bench/capacity).
func (n *Node) autonatOptions() []libp2p.Option {
	if n.cfg.WebSocketOnly {
		return nil
	}
	return []libp2p.Option{libp2p.EnableAutoNATv2()}
}

// relayLimits sizes a public node's resource and connection managers from
// its relay settings (relay.LimitsFor), counting what they refuse.
func (n *Node) relayLimits() ([]libp2p.Option, error) {
	l := relay.LimitsFor(n.cfg.Relay)
	l.Scale = limits.ScaleForTunnels
	if short := l.FDShortfall(); short > 0 {
		n.log.Warn("file descriptor limit too low for the relay's limits", "missing", short,
			"hint", "raise ulimit -n, or lower --max-reservations")
	}
	extra, err := metrics.ResourceManagerOptions(n.regOrNil())
	if err != nil {
		return nil, err
	}
	return l.HostOptions(n.refusals, extra...)
}

func (n *Node) start() error {
	if err := n.em.open(n.host.EventBus()); err != nil {
		return err
	}
	if err := n.startPaths(); err != nil {
		return err
	}
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
	n.msgr = messaging.New(n.host, n.policed(), n.log)
	if !n.cfg.DisableTopics {
		// A public node relays the topics its members follow.
		ts, err := topics.New(topics.Config{Host: n.host, Members: n, Logger: n.log, Limits: n.cfg.Topics,
			Router: n.cfg.Role == protocol.RolePublic})
		if err != nil {
			return err
		}
		n.topics = ts
	}
	if err := n.startTunnels(); err != nil {
		return err
	}
	if err := n.paths.Start(); err != nil {
		return err
	}
	if n.metrics != nil {
		if err := n.metrics.Start(n.host.EventBus(), n.msgr, n.metricsState()); err != nil {
			return fmt.Errorf("start metrics: %w", err)
		}
	}
	n.host.SetStreamHandler(protocol.PerfID, protocol.HandlePerf)
	n.host.SetStreamHandler(protocol.PerfResumeID, n.sessions.HandlePerf)
	if err := n.startRole(); err != nil {
		return err
	}
	if err := n.startTrust(); err != nil {
		return err
	}
	if !n.cfg.DisableDHT {
		if err := n.startDHT(); err != nil {
			return err
		}
	}
	if n.cfg.DataDir != "" {
		n.goRun(n.saveLoop)
	}
	n.goRun(n.pruneLoop)
	if err := n.listen(); err != nil {
		return err
	}
	if err := n.startTUN(); err != nil {
		return err
	}
	if err := n.nc.Start(n.host); err != nil {
		return err
	}
	n.log.Info("node started", "peer_id", n.host.ID(), "role", n.cfg.Role, "network", n.cfg.Network)
	return nil
}

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
	m, err := path.New(pc)
	if err != nil {
		return err
	}
	n.paths = m
	n.observePunches()
	return nil
}

// Reachability reports whether others can dial this node, and the public
// addresses it is seen at.
func (n *Node) Reachability() path.Reachability { return n.paths.Reachability() }

// Metrics returns the node's Prometheus registry, nil when it has none.
func (n *Node) Metrics() *prometheus.Registry { return n.cfg.Metrics }

// regOrNil is the node's registry as a Registerer: a nil interface, not a
// typed nil, when the node has none.
func (n *Node) regOrNil() prometheus.Registerer {
	if n.cfg.Metrics == nil {
		return nil
	}
	return n.cfg.Metrics
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

// goRun runs fn in a goroutine that Close waits for.
func (n *Node) goRun(fn func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		fn()
	}()
}

// Close stops the node: relay or keeper, host, background work, and saves
// the peer book. It is safe to call more than once and from several
// goroutines; every call returns once the first has finished.
func (n *Node) Close() error {
	var err error
	n.closed.Do(func() {
		n.cancel()
		if n.tun != nil {
			n.tun.Close()
		}
		if n.metrics != nil {
			n.metrics.Close()
		}
		if n.trustSvc != nil {
			n.trustSvc.Close()
		}
		if n.paths != nil {
			n.paths.Stop()
		}
		if n.tunnels != nil {
			n.tunnels.Close()
		}
		if n.sessions != nil {
			n.sessions.Close()
		}
		if n.msgr != nil {
			n.msgr.Close()
		}
		if n.topics != nil {
			n.topics.Close()
		}
		if k := n.keeper.Load(); k != nil {
			k.Close()
		}
		if n.relaySvc != nil {
			n.relaySvc.Close()
		}
		if n.strangers != nil {
			n.strangers.Close()
		}
		if n.dht != nil {
			n.dht.Close()
		}
		n.nc.Close()
		if n.host != nil {
			n.host.Network().StopNotify(n.notif)
			err = n.host.Close()
		}
		n.wg.Wait()
		if n.paths != nil {
			n.paths.Close()
		}
		n.em.close()
		if serr := n.saveBook(); serr != nil {
			err = errors.Join(err, serr)
		}
	})
	return err
}

// Host returns the libp2p host, for protocols that programs add.
func (n *Node) Host() host.Host { return n.host }

// ID returns the node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Messages returns the node's messenger, to send and receive member messages.
func (n *Node) Messages() *messaging.Messenger { return n.msgr }

// Certs returns the node's certificate mode, nil outside it.
func (n *Node) Certs() *certs.Manager { return n.certs }

// Topics returns the node's group messaging, nil with DisableTopics.
func (n *Node) Topics() *topics.Service { return n.topics }

// Book returns the peer book.
func (n *Node) Book() *book.Book { return n.book }

// DirectAddrs returns the node's own direct addresses.
func (n *Node) DirectAddrs() []ma.Multiaddr {
	d, _ := book.SplitAddrs(n.host.Addrs())
	return d
}

// RelayedAddrs returns the node's relayed addresses, one per address of every
// relay it holds a reservation on.
func (n *Node) RelayedAddrs() []ma.Multiaddr {
	if k := n.keeper.Load(); k != nil {
		return k.RelayedAddrs()
	}
	return nil
}

// FullAddrs returns the node's direct addresses with /p2p/<id> appended, as
// others dial them.
func (n *Node) FullAddrs() []ma.Multiaddr {
	suffix := ma.StringCast("/p2p/" + n.ID().String())
	var out []ma.Multiaddr
	for _, a := range n.DirectAddrs() {
		out = append(out, a.Encapsulate(suffix))
	}
	return out
}

// Reservations returns the relay reservations a private node holds.
func (n *Node) Reservations() []client.Reservation {
	if k := n.keeper.Load(); k != nil {
		return k.Reservations()
	}
	return nil
}

func (n *Node) loadBook() error {
	if n.cfg.DataDir == "" {
		n.book = book.New(n.cfg.Book)
		return nil
	}
	b, err := book.Load(filepath.Join(n.cfg.DataDir, bookFileName), n.cfg.Book)
	switch {
	case errors.Is(err, book.ErrCorrupt):
		n.log.Error("peer book was corrupt, starting empty", "err", err)
	case errors.Is(err, book.ErrSkipped):
		n.log.Warn("peer book had invalid entries, skipped them", "err", err)
	case err != nil:
		return err
	}
	n.book = b
	return nil
}

func (n *Node) saveBook() error {
	if n.cfg.DataDir == "" || n.book == nil {
		return nil
	}
	_, err := n.book.Save(filepath.Join(n.cfg.DataDir, bookFileName))
	return err
}

// saveLoop writes the book shortly after it changes, batching bursts: a
// second after a change, or 50 times as long as the last save took when
// that is longer (a big relay's book), so that saving a busy book costs at
// most about 2% of a core. A crash loses only that interval.
func (n *Node) saveLoop() {
	var took time.Duration
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.book.Changed():
		}
		select {
		case <-n.ctx.Done():
			return // Close saves
		case <-time.After(max(time.Second, 50*took)):
		}
		start := time.Now()
		if err := n.saveBook(); err != nil {
			n.log.Error("save peer book", "err", err)
		}
		took = time.Since(start)
	}
}

// pruneEvery is how often expired strangers leave the book and verdicts of
// peers long gone are forgotten.
const pruneEvery = time.Minute

// verdictLinger is how long a non-member's verdict outlives its last
// connection: long enough for a Connect waiting on it to read it.
const verdictLinger = time.Minute

func (n *Node) pruneLoop() {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			n.prune(now)
		}
	}
}

func (n *Node) prune(now time.Time) {
	connected := func(p peer.ID) bool { return n.host.Network().Connectedness(p) == network.Connected }
	// Strangers gone for good leave libp2p's peerstore too; the book keeps them.
	for _, p := range n.verdicts.Prune(now.Add(-verdictLinger), connected) {
		if !n.isRelay(p) {
			n.host.Peerstore().RemovePeer(p)
			n.host.Peerstore().ClearAddrs(p)
		}
	}
	if k := n.book.Evict(now, connected); k > 0 {
		n.log.Debug("peer book: strangers evicted", "count", k, "left", n.book.Len())
	}
}
