package tun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/protocol"
)

// Engine moves packets between Config.Device and the members over
// protocol.IPID streams. Its methods are safe for concurrent use.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	self    peer.ID
	members *members
	filter  *filter
	counts  counters

	mu      sync.Mutex
	links   map[peer.ID]*link           // send side, by member
	inbound map[network.Stream]struct{} // receive side, reset by Close

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// New validates cfg and starts an engine on it: it serves protocol.IPID
// streams and reads packets from the device until Close.
func New(cfg Config) (*Engine, error) {
	switch {
	case cfg.Device == nil:
		return nil, errors.New("tun: no device")
	case cfg.Host == nil:
		return nil, errors.New("tun: no libp2p host")
	case cfg.Members == nil:
		return nil, errors.New("tun: no member source")
	case !cfg.Addr4.Is4() || !cfg.Addr6.Is6() || cfg.Addr6.Is4In6():
		return nil, fmt.Errorf("tun: own addresses %s, %s: want one IPv4 and one IPv6", cfg.Addr4, cfg.Addr6)
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, self: cfg.Host.ID(),
		links: map[peer.ID]*link{}, inbound: map[network.Stream]struct{}{}}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.members = newMembers(cfg.Members, e.self, e.log)
	e.filter = newFilter(cfg.Policy, e.self)
	// A direct connection to a member moves its stream there, as
	// messaging's Repath does: path.Manager emits the event once the
	// direct connection is up.
	err := events.Follow(e.ctx, cfg.Host.EventBus(), new(events.EvtPath), e.goRun, func(ev any) {
		if p := ev.(events.EvtPath); p.Path == events.PathDirect {
			e.repath(p.Peer)
		}
	})
	if err != nil {
		e.cancel()
		return nil, fmt.Errorf("tun: follow path events: %w", err)
	}
	cfg.Host.SetStreamHandler(protocol.IPID, e.handle)
	e.goRun(e.readLoop)
	return e, nil
}

// Close stops the engine: it closes the device, resets its streams and
// waits for its goroutines. It is safe to call more than once.
func (e *Engine) Close() error {
	var err error
	e.closed.Do(func() {
		e.cancel()
		e.cfg.Host.RemoveStreamHandler(protocol.IPID)
		// Closing the device ends the read loop's Read.
		err = e.cfg.Device.Close()
		e.mu.Lock()
		for s := range e.inbound {
			s.Reset()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return err
}

// Lookup finds a member by certificate name (case-insensitive) or by peer
// ID string (base58, or CIDv1 as peer.Decode takes it): what the DNS
// server asks for NAME.overlay and PEERID.overlay, without the suffix.
// The node itself is found too, at its own addresses.
func (e *Engine) Lookup(name string) (v4, v6 netip.Addr, ok bool) {
	t := e.members.get()
	if _, ok := t.byName[strings.ToLower(name)]; !ok {
		t = e.members.refresh(true) // a member that joined since the last build
	}
	id, found := t.byName[strings.ToLower(name)]
	if !found {
		p, err := peer.Decode(name)
		if err != nil {
			// A base58 ID whose case a program changed (OpenSSH lowercases
			// host names): base58 is case-sensitive, so match it against
			// the members the node knows, ignoring case.
			if p, found = t.foldID(name); !found {
				return netip.Addr{}, netip.Addr{}, false
			}
		}
		id = p
	}
	if id == e.self {
		return e.cfg.Addr4, e.cfg.Addr6, true
	}
	m, found := t.byID[id]
	if !found {
		m, found = e.members.want(id).byID[id]
	}
	if !found {
		return netip.Addr{}, netip.Addr{}, false
	}
	if m.Collision != "" {
		// Its IPv4 address is another member's: only IPv6 reaches it.
		return netip.Addr{}, m.V6, true
	}
	return m.V4, m.V6, true
}

// Members lists the members the interface reaches, sorted by peer ID.
func (e *Engine) Members() []Member {
	t := e.members.refresh(true)
	out := make([]Member, 0, len(t.byID))
	for _, m := range t.byID {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}

// Addrs returns this node's own overlay addresses.
func (e *Engine) Addrs() (v4, v6 netip.Addr) { return e.cfg.Addr4, e.cfg.Addr6 }

// goRun runs fn in a goroutine that Close waits for.
func (e *Engine) goRun(fn func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		fn()
	}()
}
