// Package topics is group messaging: topics every member can publish to and
// follow, carried by gossipsub (go-libp2p-pubsub) over whatever connections
// join the members, relayed ones included. Only members take part: a peer
// joins a topic's mesh only once it passed the overlay handshake, and every
// message is checked against its forwarder's and its author's membership,
// signed by its author (StrictSign), capped in size, rate limited per
// author, and delivered to each local follower once, in order per
// publisher. A follower that falls behind loses messages, counted, rather
// than holding memory. The package knows the node only through Members and
// Policy.
package topics

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/protocol"
)

// Errors of Publish and Subscribe.
var (
	ErrClosed     = errors.New("topics closed")
	ErrTopicName  = errors.New("bad topic name")
	ErrTooMany    = errors.New("too many topics joined")
	ErrNotAllowed = errors.New("the access policy does not allow this")
)

// Gossipsub's queues: RPCs waiting for each peer, and messages waiting
// for validation. Each entry holds one RPC or message (at most maxRPC).
const (
	outboundQueue = 512
	validateQueue = 1024
)

// idontwantThreshold: below it a duplicate costs about what an IDONTWANT
// (a message ID) does.
const idontwantThreshold = 128

// routerMesh is the most members a router (a public node) keeps in one
// topic's mesh; past it, gossip reaches the others.
const routerMesh = 128

// MaxTopicName is the longest topic name, in bytes.
const MaxTopicName = 256

// Members is what the package asks the node about peers.
type Members interface {
	// WaitVerdict returns the outcome of p's handshake in this session,
	// waiting for one in progress until ctx is done; ok is false when
	// there is none (yet).
	WaitVerdict(ctx context.Context, p peer.ID) (events.State, bool)
}

// Policy is the access policy's say on topics, where certificates put
// members in groups (cert.Policy). Nil lets every member join and publish.
type Policy interface {
	// MayJoin reports whether member p may be in topic's mesh and receive it.
	MayJoin(p peer.ID, topic string) bool
	// MayPublish reports whether member author may publish to topic.
	MayPublish(author peer.ID, topic string) bool
}

// Config is what New needs.
type Config struct {
	Host    host.Host
	Members Members
	Policy  Policy // nil: every member
	Logger  *slog.Logger
	Limits  Limits
	// Router makes the node relay every topic its members follow (up to
	// MaxTopics), as a public node does: members that reach each other
	// only through it still share a mesh.
	Router bool
}

// Service runs gossipsub for the node. Close stops it.
type Service struct {
	cfg     Config
	log     *slog.Logger
	ps      *pubsub.PubSub
	self    peer.ID
	session uint64
	rates   *rates

	mu     sync.Mutex
	topics map[string]*topic
	closed bool

	scores  atomic.Pointer[map[peer.ID]*pubsub.PeerScoreSnapshot]
	stats   counters
	wire    wire
	mesh    meshView
	vouched vouched
	relayQ  chan relayWish // Router: topics peers follow

	// Backfill (nil store: off): what this node keeps and serves.
	store         *store
	serveLimits   serveLimits
	serveSem      chan struct{}
	backfillStats backfillCounts
	handlers      sync.WaitGroup // serveBackfill calls, added under mu
	// joined is topics by name for gossipsub's event loop (the tracer),
	// which must not take mu: join holds it while gossipsub joins.
	joined sync.Map

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts gossipsub on cfg.Host.
func New(cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
	}
	if err := checkPubsub(); err != nil {
		return nil, err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	s := &Service{cfg: cfg, log: cfg.Logger, self: cfg.Host.ID(), session: binary.BigEndian.Uint64(b[:]),
		topics: map[string]*topic{}, rates: newRates(cfg.Limits), relayQ: make(chan relayWish, 64),
		serveSem: make(chan struct{}, serveConcurrent)}
	if cfg.Limits.Backfill > 0 {
		s.store = newStore(cfg.Limits.Backfill)
	}
	// The context pubsub keeps for its life lets its streams use limited
	// (relayed) connections; limitedHost lets it see peers reached only so.
	ctx := allowLimited(context.Background())
	s.ctx, s.cancel = context.WithCancel(ctx)
	params, thresholds := scoreParams()
	gp := pubsub.DefaultGossipSubParams()
	// On receiving a message of at least this size, tell the other mesh
	// peers not to send it (IDONTWANT): with two relays in every member's
	// mesh, each would otherwise get every message back from every member.
	gp.IDontWantMessageThreshold = idontwantThreshold
	// Gossip covers History heartbeats; the cache keeps two more, as
	// gossipsub's defaults (3 and 5) do, for IWANTs that come late.
	gp.HistoryGossip, gp.HistoryLength = cfg.Limits.History, cfg.Limits.History+2
	if cfg.Router {
		// A router may be the only path between members: it keeps every
		// member that follows a topic in its mesh, up to routerMesh. Dlo
		// equal to D makes its heartbeat graft members it has left out
		// (a member's early GRAFT, before the router relayed the topic,
		// is ignored), up to D.
		gp.D, gp.Dlo, gp.Dhi, gp.Dscore, gp.Dout = routerMesh/2, routerMesh/2, routerMesh, 6, 2
	}
	ps, err := pubsub.NewGossipSub(s.ctx, limitedHost{cfg.Host},
		pubsub.WithGossipSubParams(gp),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithMaxMessageSize(maxRPC),
		pubsub.WithPeerFilter(s.mayJoin),
		pubsub.WithDefaultValidator(pubsub.ValidatorEx(s.validate)),
		pubsub.WithFloodPublish(false),
		pubsub.WithPeerScore(params, thresholds),
		pubsub.WithPeerScoreInspect(pubsub.ExtendedPeerScoreInspectFn(s.keepScores), time.Second),
		// Room for bursts: an RPC that finds a peer's queue full is
		// dropped (counted in Wire), a message that finds the validation
		// queue full too (overload in Stats).
		pubsub.WithPeerOutboundQueueSize(outboundQueue),
		pubsub.WithValidateQueueSize(validateQueue),
		pubsub.WithRawTracer(tracer{s}),
		pubsub.WithSubscriptionFilter(subFilter{s}),
		pubsub.WithLogger(s.log.With("component", "gossipsub")),
	)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("start gossipsub: %w", err)
	}
	s.ps = ps
	if s.store != nil {
		cfg.Host.SetStreamHandler(BackfillID, s.serveBackfill)
	}
	if cfg.Router {
		s.wg.Add(1)
		go s.route()
	}
	return s, nil
}

// wire counts what gossipsub sends.
type wire struct{ rpcs, bytes, dropped atomic.Uint64 }

// WireStats is what gossipsub sent: RPCs and their bytes (without the
// stream's framing, the muxer and the transport's encryption), and RPCs
// dropped because a peer's queue was full.
type WireStats struct {
	RPCs    uint64 `json:"rpcs"`
	Bytes   uint64 `json:"bytes"`
	Dropped uint64 `json:"dropped"`
}

// Wire returns what gossipsub sent since the start.
func (s *Service) Wire() WireStats {
	return WireStats{RPCs: s.wire.rpcs.Load(), Bytes: s.wire.bytes.Load(), Dropped: s.wire.dropped.Load()}
}

// Close leaves every topic and stops gossipsub; followers' channels close.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.store != nil {
		s.cfg.Host.RemoveStreamHandler(BackfillID)
	}
	ts := make([]*topic, 0, len(s.topics))
	for _, t := range s.topics {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	for _, t := range ts {
		t.stop()
	}
	s.cancel()
	s.wg.Wait()
	s.handlers.Wait()
	return nil
}

// mayJoin is gossipsub's peer filter: whom it meshes with, gossips to and
// serves on topic. It runs in gossipsub's event loop, so it never waits: a
// peer whose handshake is still running is left out until a later
// heartbeat finds it a member.
func (s *Service) mayJoin(p peer.ID, topic string) bool {
	if !s.isMemberNow(p) {
		return false
	}
	return s.cfg.Policy == nil || s.cfg.Policy.MayJoin(p, topic)
}

// isMemberNow reports p's verdict without waiting.
func (s *Service) isMemberNow(p peer.ID) bool {
	st, ok := s.cfg.Members.WaitVerdict(doneCtx, p)
	if ok && st == events.StateMember {
		s.vouched.mark(p, time.Now())
		return true
	}
	return false
}

// doneCtx is a context already done: WaitVerdict then answers at once.
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// ValidName reports why a topic name cannot be used, or nil.
func ValidName(name string) error {
	if name == "" || len(name) > MaxTopicName {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrTopicName, len(name), MaxTopicName)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: control character in %q", ErrTopicName, name)
		}
	}
	return nil
}

// join returns the topic, joining it first if need be.
func (s *Service) join(name string) (*topic, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if t := s.topics[name]; t != nil {
		return t, nil
	}
	if len(s.topics) >= s.cfg.Limits.MaxTopics {
		return nil, fmt.Errorf("join %q: %w (%d)", name, ErrTooMany, s.cfg.Limits.MaxTopics)
	}
	pt, err := s.ps.Join(name)
	if err != nil {
		return nil, fmt.Errorf("join %q: %w", name, err)
	}
	if err := pt.SetScoreParams(topicScoreParams()); err != nil {
		pt.Close()
		return nil, fmt.Errorf("join %q: score params: %w", name, err)
	}
	t := newTopic(s, name, pt)
	s.topics[name] = t
	s.joined.Store(name, t)
	return t, nil
}

// Join joins topic without following it, so that its peers are known
// before this node publishes.
func (s *Service) Join(name string) error {
	_, err := s.join(name)
	return err
}

// PublishResult says where a published message went.
type PublishResult struct {
	Seq uint64 `json:"seq"`
	// Peers is how many members follow the topic among this node's peers:
	// 0 means nobody received the message.
	Peers int `json:"peers"`
}

// Publish sends data to every member following topic, joining it first.
// It waits while this node publishes faster than Limits.Rate.
func (s *Service) Publish(ctx context.Context, name string, data []byte) (PublishResult, error) {
	if len(data) > s.cfg.Limits.MaxSize {
		return PublishResult{}, fmt.Errorf("publish to %q: %d bytes, over %d: %w", name, len(data), s.cfg.Limits.MaxSize, protocol.ErrTooLarge)
	}
	if s.cfg.Policy != nil && !s.cfg.Policy.MayPublish(s.self, name) {
		return PublishResult{}, fmt.Errorf("publish to %q: %w", name, ErrNotAllowed)
	}
	t, err := s.join(name)
	if err != nil {
		return PublishResult{}, err
	}
	if err := t.limit.Wait(ctx); err != nil {
		return PublishResult{}, fmt.Errorf("publish to %q: wait for rate limit: %w", name, err)
	}
	// The sequence number and gossipsub's own must go out in one order,
	// so that a follower sees this node's messages in sequence.
	t.pubMu.Lock()
	defer t.pubMu.Unlock()
	seq := t.pubSeq + 1
	env := envelope{session: s.session, seq: seq, data: data}
	if err := t.pt.Publish(ctx, env.encode()); err != nil {
		return PublishResult{}, fmt.Errorf("publish to %q: %w", name, err)
	}
	t.pubSeq = seq
	t.published.Add(1)
	return PublishResult{Seq: seq, Peers: len(t.peersFollowing())}, nil
}

// Subscribe follows topic, joining it first, until sub.Close or ctx is
// done; buffer <= 0 takes Limits.Buffer.
func (s *Service) Subscribe(ctx context.Context, name string, buffer int) (*Sub, error) {
	t, err := s.join(name)
	if err != nil {
		return nil, err
	}
	if buffer <= 0 {
		buffer = s.cfg.Limits.Buffer
	}
	return t.follow(ctx, buffer)
}

// TopicInfo is what Topics says about one topic.
type TopicInfo struct {
	Name string `json:"name"`
	// Peers are the members that follow or relay the topic among this
	// node's peers; Mesh those it exchanges every message with (the rest
	// get gossip about them).
	Peers     []string `json:"peers"`
	Mesh      []string `json:"mesh"`
	Followers int      `json:"followers"`
	Relayed   bool     `json:"relayed"`
	Published uint64   `json:"published"`
	Delivered uint64   `json:"delivered"`
	Missed    uint64   `json:"missed"`
	Dropped   uint64   `json:"dropped"`
	// Late messages arrived after the follower had given them up as
	// missed; they are not delivered.
	Late uint64 `json:"late"`
	// Backfilled messages were missing here and came from a peer that
	// kept them (BackfillID).
	Backfilled uint64 `json:"backfilled"`
}

// Topics lists the joined topics, by name.
func (s *Service) Topics() []TopicInfo {
	s.mu.Lock()
	ts := make([]*topic, 0, len(s.topics))
	for _, t := range s.topics {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	out := make([]TopicInfo, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Score returns gossipsub's latest score of p (refreshed every second),
// and whether it has one.
func (s *Service) Score(p peer.ID) (float64, bool) {
	m := s.scores.Load()
	if m == nil {
		return 0, false
	}
	sc, ok := (*m)[p]
	if !ok {
		return 0, false
	}
	return sc.Score, true
}

// Scores returns gossipsub's latest score of every peer it scores (taken
// each second).
func (s *Service) Scores() map[peer.ID]float64 {
	out := map[peer.ID]float64{}
	if m := s.scores.Load(); m != nil {
		for p, sc := range *m {
			out[p] = sc.Score
		}
	}
	return out
}

func (s *Service) keepScores(m map[peer.ID]*pubsub.PeerScoreSnapshot) { s.scores.Store(&m) }

// Stats counts refused messages by reason, for status and tests.
func (s *Service) Stats() map[Reason]uint64 { return s.stats.snapshot() }
