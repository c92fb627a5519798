// Package hostopts builds the libp2p options of a node's host from its
// configuration (node/config): identity, transports (WebSocket, TCP, QUIC,
// or a private network's PSK), a public node's Gate and the resource and
// connection limits sized from its relay settings, AutoNAT and metrics.
// It does not import package node.
package hostopts

import (
	"cmp"
	"log/slog"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/overlay-net/overlay/internal/wstransport"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/config"
	"github.com/overlay-net/overlay/node/limits"
	"github.com/overlay-net/overlay/node/metrics"
	"github.com/overlay-net/overlay/node/muxer"
	"github.com/overlay-net/overlay/node/path"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
)

// Config is what the options are built from.
type Config struct {
	Node   config.Config // validated
	Logger *slog.Logger
	// QUIC returns the QUIC transport's constructor, for libp2p.Transport
	// (netcheck's, which keeps its socket manager).
	QUIC func() any
	// RelayedAddrs are a private node's relayed addresses, announced
	// after its direct ones.
	RelayedAddrs func() []ma.Multiaddr
}

// Parts are what Build made that the node keeps.
type Parts struct {
	Refusals *relay.Refusals  // public: what limits refused, for status and logs
	Gate     *relay.Gate      // public: bounds connections before their security handshake
	Metrics  *metrics.Metrics // nil without a registry
	Sockets  *path.Sockets    // private, with QUIC: the host's QUIC sockets
}

type builder struct {
	Parts
	cfg  config.Config
	log  *slog.Logger
	quic func() any
}

// Build returns the host's options, which leave it listening nowhere (the
// node listens once it is ready), and the parts the node keeps.
func Build(c Config) ([]libp2p.Option, Parts, error) {
	b := &builder{cfg: c.Node, log: c.Logger, quic: c.QUIC}
	opts, err := b.hostOptions(c.RelayedAddrs)
	return opts, b.Parts, err
}

// wsConfig is the WebSocket transport's configuration: the node's, logging
// to the node's logger, with refusals over its pending caps counted with
// the relay's other limits.
func (b *builder) wsConfig() wstransport.Config {
	c := b.cfg.WebSocket
	if b.Gate != nil {
		// The gate sees these connections first and closes the oldest
		// silent one for a newcomer; the transport's caps refuse the
		// newcomer instead, so they must lie above the gate's, or they
		// would refuse honest peers the gate lets in (docs/BENCHMARKS.md).
		l := relay.LimitsFor(b.cfg.Relay)
		c.MaxPending = max(cmp.Or(c.MaxPending, wstransport.DefaultMaxPending), 2*l.Pending)
		c.MaxPendingPerIP = max(cmp.Or(c.MaxPendingPerIP, wstransport.DefaultMaxPendingPerIP), 2*l.PendingPerIP)
	}
	c.Logger = b.log
	c.Refused = func(limit string) {
		// Set before the host listens (relayLimits), nil on a private node.
		if r := b.Refusals; r != nil {
			r.Add(limit)
		}
	}
	return c
}

func (b *builder) hostOptions(relayedAddrs func() []ma.Multiaddr) ([]libp2p.Option, error) {
	if b.cfg.Role == protocol.RolePublic {
		b.Refusals = relay.NewRefusals(b.log)
		b.Gate = relay.LimitsFor(b.cfg.Relay).Gate(b.Refusals)
	}
	opts := []libp2p.Option{
		libp2p.Identity(b.cfg.Key),
		libp2p.UserAgent(config.Agent),
		libp2p.EnableRelay(),
	}
	if reg := b.cfg.Metrics; reg != nil {
		// go-libp2p's own collectors (swarm, identify, AutoNAT, event bus,
		// resource manager) go to the node's registry too.
		b.Metrics = metrics.New(reg)
		opts = append(opts, libp2p.PrometheusRegisterer(reg))
	}
	opts = append(opts, b.transports()...)
	opts = append(opts, b.autonatOptions()...)
	// The node listens once it is ready (start): a peer that connects
	// earlier would find no handshake handler, take this node for a stock
	// one, and be refused for as long as its connection lasts (a relay
	// restarting while its peers retry every 300 ms).
	opts = append(opts, libp2p.NoListenAddrs)
	if b.cfg.Role == protocol.RolePrivate {
		// A private node keeps libp2p's own limits (autoscaled from memory,
		// hundreds of connections): it holds a few relays and members. Hole
		// punching is the node's own (node/path), not libp2p's.
		// Tunnels get room beyond those limits (node/limits).
		extra, err := metrics.ResourceManagerOptions(b.regOrNil())
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
				return append(direct, relayedAddrs()...)
			})), nil
	}
	rl, err := b.relayLimits()
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
func (b *builder) transports() []libp2p.Option {
	// Our own WebSocket transport, wire-compatible with go-libp2p's:
	// buffers that hold a whole TLS record, pooled so idle connections hold
	// none (docs/datapath.md). The gate sees its connections from the TCP
	// accept until their security handshake ends, and takes one whose
	// upgrade is followed by silence for silent (watchedConn.Upgraded).
	ws := func(u transport.Upgrader, rm network.ResourceManager) (*wstransport.Transport, error) {
		if b.Gate != nil {
			u = b.Gate.Upgrader(u)
		}
		return wstransport.New(u, rm, wstransport.WithConfig(b.wsConfig()))
	}
	tcpT := any(tcp.NewTCPTransport)
	if b.Gate != nil {
		tcpT = b.Gate.TCP
	}
	opts := []libp2p.Option{libp2p.Transport(ws), muxer.Option()}
	if !b.cfg.WebSocketOnly {
		opts = append(opts, libp2p.Transport(tcpT))
	}
	if len(b.cfg.PSK) > 0 {
		// libp2p's QUIC refuses a private network: its handshake is
		// QUIC's own TLS, with no room for the PSK layer.
		return append(opts, libp2p.PrivateNetwork(b.cfg.PSK))
	}
	if !b.cfg.WebSocketOnly {
		// go-libp2p's QUIC transport; netcheck keeps its socket manager.
		opts = append(opts, libp2p.Transport(b.quic()))
		if b.cfg.Role == protocol.RolePrivate {
			// Hole punching sends its own packets from the QUIC socket.
			b.Sockets = path.NewSockets()
			opts = append(opts, b.Sockets.QUICReuse(b.regOrNil()))
		}
	}
	return opts
}

// autonatOptions run AutoNAT v2, which checks each address on its own and serves
// the check to others; reachability comes to status through events. A
// WebSocket-only node listens nowhere, so it has nothing to check, and
// AutoNAT v2's second libp2p host would double what the node costs to
// start (half of a load generator's CPU in bench/capacity).
func (b *builder) autonatOptions() []libp2p.Option {
	if b.cfg.WebSocketOnly {
		return nil
	}
	return []libp2p.Option{libp2p.EnableAutoNATv2()}
}

// relayLimits sizes a public node's resource and connection managers from
// its relay settings (relay.LimitsFor), counting what they refuse.
func (b *builder) relayLimits() ([]libp2p.Option, error) {
	l := relay.LimitsFor(b.cfg.Relay)
	l.Scale = limits.ScaleForTunnels
	if short := l.FDShortfall(); short > 0 {
		b.log.Warn("file descriptor limit too low for the relay's limits", "missing", short,
			"hint", "raise ulimit -n, or lower --max-reservations")
	}
	extra, err := metrics.ResourceManagerOptions(b.regOrNil())
	if err != nil {
		return nil, err
	}
	return l.HostOptions(b.Refusals, extra...)
}

// regOrNil is the node's registry as a Registerer: a nil interface, not a
// typed nil, when the node has none.
func (b *builder) regOrNil() prometheus.Registerer {
	if b.cfg.Metrics == nil {
		return nil
	}
	return b.cfg.Metrics
}
