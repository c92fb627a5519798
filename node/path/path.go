// Package path owns how a node reaches each peer: it reports path changes
// (events.EvtPath), learns the node's public address from trusted peers,
// punches holes to get direct connections, moves traffic off a relay once a
// peer is reached directly, and reports reachability.
package path

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/node/book"
)

// Config wires a Manager to its node.
type Config struct {
	Host host.Host
	// Book has each peer's path set before the change is emitted.
	Book   *book.Book
	Logger *slog.Logger
	// WebSocketOnly nodes cannot be hole-punched: they never start it.
	WebSocketOnly bool
	// RelayedGrace is how long a relayed connection to a peer also reached
	// directly may sit idle before it is closed; 0 keeps it.
	RelayedGrace time.Duration
	// Trusted says whether p's report of our address is believed: p is
	// one of our relays or a member (see observed).
	Trusted func(peer.ID) bool
	// Repath moves p's message stream to its direct connection; nil: none.
	Repath func(peer.ID)
	// Probe checks that a direct connection still answers (messaging.Probe).
	Probe func(context.Context, network.Conn) error
	// HolePunchMetrics, when set, also receives every hole-punch event.
	HolePunchMetrics holepunch.MetricsTracer
	// Sockets are the host's QUIC sockets (Sockets.QUICReuse), for the
	// pre-punch over UDP; nil: pre-punch over TCP only.
	Sockets *Sockets
	// NAT is what netcheck found of this node's NAT, and Packets the QUIC
	// socket's path for non-QUIC packets (nil before it exists): with both,
	// the node sprays ports to beat a NAT that maps per destination
	// (spray.go). Nil: no spraying.
	NAT     func() NATInfo
	Packets func() PacketSocket
}

// Manager keeps the node's paths. Its methods are safe for concurrent use.
type Manager struct {
	cfg Config
	log *slog.Logger
	em  event.Emitter

	mu    sync.Mutex // serialises Refresh, so that changes go out in order
	paths map[peer.ID]book.Path

	observed *observed
	punch    *puncher
	spray    *sprayer
	retiring *retiring
	autonat  *reachability

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New opens the path emitter on the host's bus. Start begins the work
// that follows events.
func New(cfg Config) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	em, err := cfg.Host.EventBus().Emitter(new(events.EvtPath))
	if err != nil {
		return nil, fmt.Errorf("path emitter: %w", err)
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, em: em, paths: map[peer.ID]book.Path{},
		observed: newObserved(cfg.Trusted),
		punch:    &puncher{log: cfg.Logger, pre: &prePunch{host: cfg.Host, sockets: cfg.Sockets, log: cfg.Logger, ttl: prePunchTTL}},
		retiring: &retiring{m: map[peer.ID]struct{}{}}, autonat: &reachability{}, spray: newSprayer()}
	m.punch.punched = m.repunch
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m, nil
}

// Start follows path changes (migration to direct, repunching) and
// AutoNAT's findings until Stop.
func (m *Manager) Start() error {
	if err := m.watchPaths(); err != nil {
		return fmt.Errorf("watch paths: %w", err)
	}
	if err := m.watchReachability(); err != nil {
		return fmt.Errorf("watch reachability: %w", err)
	}
	if m.cfg.Packets != nil && !m.cfg.WebSocketOnly {
		m.cfg.Host.SetStreamHandler(SprayProtocol, m.handleSpray)
	}
	return nil
}

// Stop ends hole punching and the background work; call it before the
// host closes. Paths still change (and are emitted) until Close.
func (m *Manager) Stop() {
	m.cfg.Host.RemoveStreamHandler(SprayProtocol)
	m.cancel()
	m.punch.close()
}

// Close stops everything, waits for the manager's goroutines and closes the
// emitter. It is safe to call after Stop, and more than once.
func (m *Manager) Close() {
	m.Stop()
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.em != nil {
		m.em.Close()
		m.em = nil
	}
}

// Refresh emits an EvtPath when how p is reached has changed.
func (m *Manager) Refresh(p peer.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	path, conn := m.PathTo(p)
	prev, ok := m.paths[p]
	if !ok {
		prev = book.PathNone
	}
	if prev == path {
		return
	}
	if path == book.PathNone {
		delete(m.paths, p)
	} else {
		m.paths[p] = path
	}
	m.cfg.Book.SetPath(p, path)
	if m.em != nil {
		_ = m.em.Emit(events.EvtPath{Peer: p, Path: path, Prev: prev, Conn: conn})
	}
}

// PathTo says how p is reached now, and over which connection: direct
// beats relayed.
func (m *Manager) PathTo(p peer.ID) (book.Path, network.Conn) {
	path, via := book.PathNone, network.Conn(nil)
	for _, c := range m.cfg.Host.Network().ConnsToPeer(p) {
		if c.IsClosed() {
			continue
		}
		if !book.IsRelayed(c.RemoteMultiaddr()) {
			return book.PathDirect, c
		}
		path, via = book.PathRelayed, c
	}
	return path, via
}

// Connected takes a new connection: the path may change, and a peer that
// comes in through a relay while a direct connection exists has its
// direct connections checked (checkDirect). A relayed connection made
// while a direct one exists is retired like the others once idle.
func (m *Manager) Connected(c network.Conn) {
	p := c.RemotePeer()
	m.Refresh(p)
	if m.ctx.Err() != nil {
		return
	}
	if !book.IsRelayed(c.RemoteMultiaddr()) {
		return
	}
	if direct, _ := m.connsByPath(p); direct {
		if c.Stat().Direction == network.DirInbound {
			m.goRun(func() { m.checkDirect(p) })
		}
		// The path stays direct, so no path event starts a watcher for
		// this relayed connection: start one here.
		if m.cfg.RelayedGrace > 0 {
			m.retireRelayed(p)
		}
	}
}

// Disconnected forgets what was observed over c; the path may change.
func (m *Manager) Disconnected(c network.Conn) {
	m.observed.drop(c)
	m.Refresh(c.RemotePeer())
}

// Observed takes what p sees this node's address as over c (identify's
// observed address), and starts hole punching at the first usable one
// from a trusted peer.
func (m *Manager) Observed(p peer.ID, c network.Conn, addr ma.Multiaddr) {
	if m.observed.note(p, c, addr) && m.cfg.Trusted(p) {
		m.startPunching()
	}
}

// goRun runs fn in a goroutine that Close waits for.
func (m *Manager) goRun(fn func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		fn()
	}()
}

// follow calls fn with every event of type evtType until Stop.
func (m *Manager) follow(evtType any, fn func(any)) error {
	return events.Follow(m.ctx, m.cfg.Host.EventBus(), evtType, m.goRun, fn)
}
