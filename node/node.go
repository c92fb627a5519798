// Package node builds an overlay node: it owns the libp2p host's
// construction (options from node/hostopts, Config from node/config) and
// lifecycle, and wires to it the handshake
// (node/handshake), the peer book (node/book), paths (node/path),
// messaging, tunnels, the DHT, metrics, and either the relay server
// (public, relay/) or the reservation keeper (private, relay/client).
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/certs"
	"github.com/overlay-net/overlay/node/dht"
	"github.com/overlay-net/overlay/node/handshake"
	"github.com/overlay-net/overlay/node/hostopts"
	"github.com/overlay-net/overlay/node/messaging"
	"github.com/overlay-net/overlay/node/metrics"
	"github.com/overlay-net/overlay/node/netcheck"
	"github.com/overlay-net/overlay/node/path"
	"github.com/overlay-net/overlay/node/resume"
	"github.com/overlay-net/overlay/node/topics"
	"github.com/overlay-net/overlay/node/trust"
	"github.com/overlay-net/overlay/node/tun"
	"github.com/overlay-net/overlay/node/tunnel"
	"github.com/overlay-net/overlay/node/verdict"
	"github.com/overlay-net/overlay/relay"
	"github.com/overlay-net/overlay/relay/client"
)

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
		cfg.Certs.Revoked = n.trust.RevokedHook(cfg.Certs.Revoked)
		n.certs, err = certs.Open(cfg.Certs, cfg.Key, n.book, n.log)
	}
	if err != nil {
		return nil, err
	}
	n.joinTrust()
	opts, parts, err := hostopts.Build(hostopts.Config{Node: n.cfg, Logger: n.log,
		QUIC: n.nc.QUICTransport, RelayedAddrs: n.RelayedAddrs})
	if err != nil {
		return nil, err
	}
	n.refusals, n.metrics, n.sockets = parts.Refusals, parts.Metrics, parts.Sockets
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

// start wires the node's parts to the host in order, each concern in a
// step of its own, and listens last: a peer that connects finds every
// handler in place.
func (n *Node) start() error {
	steps := []func() error{
		func() error { return n.em.open(n.host.EventBus()) }, // events.go
		n.startPaths,      // path management, made before the first connection
		n.startMembership, // handshake, certificates, connection and identify events
		n.startMessaging,  // messages and topics
		n.startTunnels,    // resumable sessions and tunnels (tunnels.go)
		func() error { return n.paths.Start() },
		n.startMetrics,
		n.startPerf,
		n.startRole,  // relay service or reservation keeper
		n.startTrust, // trust.go
		n.startDHT,   // dht.go
		n.startBackground,
		n.listen,   // listen.go
		n.startTUN, // tun.go
		n.startNetCheck,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	n.log.Info("node started", "peer_id", n.host.ID(), "role", n.cfg.Role, "network", n.cfg.Network)
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
