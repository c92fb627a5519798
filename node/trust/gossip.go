package trust

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/events"
)

// Members vouches for members: only they take part in the exchange.
type Members interface {
	// IsMember reports whether p passed the handshake, waiting for one in
	// progress until ctx is done (at once for a done ctx).
	IsMember(ctx context.Context, p peer.ID) bool
}

// Defaults of GossipConfig.
const (
	// DefaultParallel bounds the exchanges a node runs at once when it
	// pushes a change to every member it holds (a relay holds many).
	DefaultParallel = 16
	// DefaultMaxInbound bounds the exchanges peers run with this node at
	// once; more wait, within their deadline.
	DefaultMaxInbound = 16
)

// GossipConfig wires a Gossip to its node.
type GossipConfig struct {
	Host    host.Host
	Store   *Store
	Members Members
	Logger  *slog.Logger
	// Parallel and MaxInbound: zero takes the defaults.
	Parallel, MaxInbound int
	// Budget is what each peer may make this node check; zero takes
	// DefaultBudget.
	Budget Budget
}

// Gossip passes the Store's documents on: to a member when a connection
// to it is admitted (the dialing side starts the exchange), and to every
// member connected when the Store changes. Relays hold their reserved
// peers' connections, so a change reaches those too.
type Gossip struct {
	cfg    GossipConfig
	h      host.Host
	s      *Store
	log    *slog.Logger
	limits *limiter
	inSem  chan struct{}

	wake     chan struct{} // a change to push; capacity 1 coalesces bursts
	inflight sync.Map      // peer.ID -> struct{}: initiated exchanges

	unsub  func()
	sub    event.Subscription
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewGossip starts serving ID on cfg.Host and passing documents on, until
// Close.
func NewGossip(cfg GossipConfig) (*Gossip, error) {
	if cfg.Host == nil || cfg.Store == nil || cfg.Members == nil {
		return nil, errors.New("trust gossip: needs a host, a store and members")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	if cfg.MaxInbound <= 0 {
		cfg.MaxInbound = DefaultMaxInbound
	}
	if cfg.Budget == (Budget{}) {
		cfg.Budget = DefaultBudget
	}
	g := &Gossip{cfg: cfg, h: cfg.Host, s: cfg.Store, log: cfg.Logger, limits: newLimiter(cfg.Budget),
		inSem: make(chan struct{}, cfg.MaxInbound), wake: make(chan struct{}, 1)}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	sub, err := g.h.EventBus().Subscribe(new(events.EvtVerdict))
	if err != nil {
		return nil, fmt.Errorf("trust gossip: subscribe to verdicts: %w", err)
	}
	g.sub = sub
	g.h.SetStreamHandler(ID, g.handle)
	g.unsub = g.s.Subscribe(func(Change) {
		select {
		case g.wake <- struct{}{}:
		default:
		}
	})
	g.goRun(g.pushLoop)
	g.goRun(g.verdictLoop)
	return g, nil
}

func (g *Gossip) goRun(fn func()) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		fn()
	}()
}

// Close stops serving and waits for every exchange it started.
func (g *Gossip) Close() {
	g.h.RemoveStreamHandler(ID)
	g.unsub()
	g.cancel()
	g.sub.Close()
	g.wg.Wait()
}

// verdictLoop starts an exchange on each member connection this node
// dialed: the other side does the same for those it dialed, so one
// exchange runs per connection.
func (g *Gossip) verdictLoop() {
	for {
		select {
		case <-g.ctx.Done():
			return
		case e, ok := <-g.sub.Out():
			if !ok {
				return
			}
			ev := e.(events.EvtVerdict)
			if ev.State != events.StateMember || ev.Conn == nil || ev.Conn.Stat().Direction != network.DirOutbound {
				continue
			}
			g.goRun(func() { g.syncOnce(ev.Peer) })
		}
	}
}

// pushLoop pushes each change to every member connected, coalescing the
// changes that come while a push runs.
func (g *Gossip) pushLoop() {
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-g.wake:
		}
		g.PushAll()
	}
}

// PushAll runs an exchange with every member connected, Parallel at a
// time, and returns when all have ended.
func (g *Gossip) PushAll() {
	sem := make(chan struct{}, g.cfg.Parallel)
	var wg sync.WaitGroup
	for _, p := range g.members() {
		select {
		case sem <- struct{}{}:
		case <-g.ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			g.syncOnce(p)
		}()
	}
	wg.Wait()
}

// members are the peers connected now whose handshake passed.
func (g *Gossip) members() []peer.ID {
	now, cancel := context.WithCancel(g.ctx)
	cancel() // a verdict already reached, no waiting
	var out []peer.ID
	for _, p := range g.h.Network().Peers() {
		if g.cfg.Members.IsMember(now, p) {
			out = append(out, p)
		}
	}
	return out
}

// syncOnce runs an exchange with p unless one this node started runs
// already; its failure is logged, not returned: the next connection or
// change tries again.
func (g *Gossip) syncOnce(p peer.ID) {
	if _, busy := g.inflight.LoadOrStore(p, struct{}{}); busy {
		return
	}
	defer g.inflight.Delete(p)
	if err := g.Sync(g.ctx, p); err != nil && g.ctx.Err() == nil {
		g.log.Debug("trust exchange", "peer", p, "err", err)
	}
}

// Sync runs one exchange with p as its initiator: each side ends up
// holding the newer of the two sides' documents.
func (g *Gossip) Sync(ctx context.Context, p peer.ID) error {
	ctx, cancel := context.WithTimeout(ctx, ExchangeTimeout)
	defer cancel()
	ctx = network.WithAllowLimitedConn(ctx, "overlay trust")
	s, err := g.h.NewStream(ctx, p, ID)
	if err != nil {
		return fmt.Errorf("open trust stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	_ = s.SetDeadline(time.Now().Add(ExchangeTimeout))
	mine := g.versions()
	if err := writeVersions(s, mine); err != nil {
		s.Reset()
		return fmt.Errorf("send versions: %w", err)
	}
	theirs, err := readVersions(s)
	if err != nil {
		s.Reset()
		return err
	}
	docs, err := readDocuments(s)
	if err != nil {
		s.Reset()
		return err
	}
	g.take(p, docs)
	if err := g.sendNewer(s, theirs); err != nil {
		s.Reset()
		return err
	}
	return s.Close()
}

// handle answers an exchange a member started.
func (g *Gossip) handle(s network.Stream) {
	p := s.Conn().RemotePeer()
	_ = s.SetDeadline(time.Now().Add(ExchangeTimeout))
	ctx, cancel := context.WithTimeout(g.ctx, ExchangeTimeout)
	defer cancel()
	if !g.cfg.Members.IsMember(ctx, p) {
		s.Reset()
		return
	}
	select {
	case g.inSem <- struct{}{}:
		defer func() { <-g.inSem }()
	case <-ctx.Done():
		s.Reset()
		return
	}
	theirs, err := readVersions(s)
	if err != nil {
		g.log.Debug("trust exchange", "peer", p, "err", err)
		s.Reset()
		return
	}
	if err := writeVersions(s, g.versions()); err == nil {
		err = g.sendNewer(s, theirs)
	}
	if err != nil {
		s.Reset()
		return
	}
	mine := g.versions()
	if (theirs.Revocations > mine.Revocations || theirs.Policy > mine.Policy) && !g.limits.has(p) {
		// It would send a document this node would drop unchecked:
		// spare reading it.
		g.s.count(RateLimited)
		s.Reset()
		return
	}
	docs, err := readDocuments(s)
	if err != nil {
		g.log.Debug("trust exchange", "peer", p, "err", err)
		s.Reset()
		return
	}
	g.take(p, docs)
	_ = s.Close()
}

func (g *Gossip) versions() Versions {
	r, p := g.s.Versions()
	return Versions{Revocations: r, Policy: p}
}

// sendNewer sends each document this node holds a newer version of than
// theirs, then end.
func (g *Gossip) sendNewer(s network.Stream, theirs Versions) error {
	mine := g.versions()
	for _, kind := range []byte{cert.KindRevocations, cert.KindPolicy} {
		if mine.of(kind) <= theirs.of(kind) {
			continue
		}
		if doc := g.s.Raw(kind); doc != nil {
			if err := writeDocument(s, kind, doc); err != nil {
				return fmt.Errorf("send %s: %w", cert.KindName(kind), err)
			}
		}
	}
	return writeEnd(s)
}

// take offers the documents p sent to the Store, within p's budget: a
// document the Store refuses (forged, another CA's, garbage) or finds
// older than its own costs the sender budget; a newer or the same one is
// free, as honest members send nothing else.
func (g *Gossip) take(p peer.ID, docs []Doc) {
	for _, d := range docs {
		if !g.limits.has(p) {
			g.s.count(RateLimited)
			g.log.Debug("trust document over the peer's budget", "peer", p, "kind", cert.KindName(d.Kind))
			continue
		}
		_, err := g.s.Offer(d.Kind, d.Raw)
		switch {
		case err == nil, errors.Is(err, ErrStale):
		case errors.Is(err, ErrRollback):
			g.limits.take(p, costRollback)
			g.log.Debug("older "+cert.KindName(d.Kind)+" ignored", "peer", p, "err", err)
		default:
			g.limits.take(p, costBad)
			g.log.Warn("refused a "+cert.KindName(d.Kind)+" from a peer", "peer", p, "reason", cert.ReasonOf(err), "err", err)
		}
	}
}
