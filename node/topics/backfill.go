package topics

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/protocol"
)

// Serving backfill requests: each member may ask serveRate times a second
// (serveBurst at once), and have servePerPeer requests served at a time;
// serveConcurrent are served at a time over all peers, each within
// serveTimeout. A member that reads its replies slowly thus holds at most
// servePerPeer of the serveConcurrent slots.
const (
	serveRate       = 2
	serveBurst      = 8
	servePerPeer    = 2
	serveConcurrent = 8
	serveTimeout    = 15 * time.Second
	maxServeLimits  = 4096
)

// Asking: a gap waits backfillDelay (gossip may fill it) before it is
// asked for; each request gets askTimeout; at most askPeers peers are
// asked per gap, and maxFetches gaps per topic at a time.
const (
	backfillDelay = time.Second
	askTimeout    = 5 * time.Second
	askPeers      = 6
	maxFetches    = 8
)

// serveBackfill answers one BackfillID stream.
func (s *Service) serveBackfill(st network.Stream) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = st.Reset()
		return
	}
	s.handlers.Add(1)
	s.mu.Unlock()
	defer s.handlers.Done()
	stop := context.AfterFunc(s.ctx, func() { _ = st.Reset() })
	defer stop()
	if err := s.serve(st); err != nil {
		s.log.Debug("backfill request refused", "peer", st.Conn().RemotePeer(), "err", err)
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

func (s *Service) serve(st network.Stream) error {
	p := st.Conn().RemotePeer()
	_ = st.SetDeadline(time.Now().Add(serveTimeout))
	ctx, cancel := context.WithTimeout(s.ctx, serveTimeout)
	defer cancel()
	// The rate first: a stranger's streams, each waited on below, count.
	allowed := s.serveLimits.allow(p, time.Now())
	defer s.serveLimits.done(p)
	if !allowed {
		s.backfillStats.refused.Add(1)
		return errors.New("over the request rate or too many at once")
	}
	if !s.forwarderIsMember(ctx, p) {
		s.backfillStats.refused.Add(1)
		return errors.New("not a member")
	}
	select {
	case s.serveSem <- struct{}{}:
		defer func() { <-s.serveSem }()
	default:
		s.backfillStats.refused.Add(1)
		return errors.New("busy")
	}
	typ, payload, err := protocol.ReadFrame(st, maxBackfillRequest)
	if err != nil {
		s.backfillStats.refused.Add(1)
		return fmt.Errorf("read request: %w", err)
	}
	if typ != frameBackfillRequest {
		s.backfillStats.refused.Add(1)
		return fmt.Errorf("frame type %d, want a request", typ)
	}
	req, err := decodeBackfillRequest(payload)
	if err != nil {
		s.backfillStats.refused.Add(1)
		return err
	}
	if s.cfg.Policy != nil && !s.cfg.Policy.MayJoin(p, req.topic) {
		s.backfillStats.refused.Add(1)
		return fmt.Errorf("topic %q: %w", req.topic, ErrNotAllowed)
	}
	msgs := s.store.lookup(req, time.Now())
	w := bufio.NewWriterSize(st, 64<<10)
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			return fmt.Errorf("marshal message: %w", err)
		}
		if err := protocol.WriteFrame(w, frameBackfillMessage, b); err != nil {
			return fmt.Errorf("write message: %w", err)
		}
	}
	if err := protocol.WriteFrame(w, frameBackfillEnd); err != nil {
		return fmt.Errorf("write end: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write reply: %w", err)
	}
	s.backfillStats.served.Add(uint64(len(msgs)))
	return nil
}

// serveLimits holds a token bucket per asking peer and its requests being
// served.
type serveLimits struct {
	mu     sync.Mutex
	m      map[peer.ID]*rate.Limiter
	active map[peer.ID]int
}

// allow reports whether p may be served now; every call must be followed
// by done(p), whatever it returned.
func (l *serveLimits) allow(p peer.ID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil || len(l.m) >= maxServeLimits {
		// A full table starts over: each bucket is full again, which
		// costs at most serveBurst requests per peer.
		l.m = map[peer.ID]*rate.Limiter{}
	}
	if l.active == nil {
		l.active = map[peer.ID]int{}
	}
	l.active[p]++
	lim := l.m[p]
	if lim == nil {
		lim = rate.NewLimiter(serveRate, serveBurst)
		l.m[p] = lim
	}
	return l.active[p] <= servePerPeer && lim.AllowN(now, 1)
}

func (l *serveLimits) done(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active[p]--; l.active[p] <= 0 {
		delete(l.active, p)
	}
}

// backfillCounts counts backfill on both sides.
type backfillCounts struct {
	asked, got, served, refused, badReplies atomic.Uint64
}

// BackfillStats counts backfill requests and messages.
type BackfillStats struct {
	// Asked is requests this node sent, Got the messages they brought that
	// were new here.
	Asked uint64 `json:"asked"`
	Got   uint64 `json:"got"`
	// Served is messages sent to peers that asked; Refused requests
	// refused (not a member, over the rate, malformed, busy).
	Served  uint64 `json:"served"`
	Refused uint64 `json:"refused"`
	// BadReplies are replies that broke the protocol or carried a message
	// that failed the checks.
	BadReplies uint64 `json:"bad_replies"`
	// Held is how many messages the store holds to answer requests.
	Held int `json:"held"`
}

// Backfill returns the backfill counts.
func (s *Service) Backfill() BackfillStats {
	c := &s.backfillStats
	out := BackfillStats{Asked: c.asked.Load(), Got: c.got.Load(), Served: c.served.Load(),
		Refused: c.refused.Load(), BadReplies: c.badReplies.Load()}
	if s.store != nil {
		out.Held = s.store.len()
	}
	return out
}

// gap is a run of one author's messages a follower lacks.
type gap struct {
	author      peer.ID
	session     uint64
	first, last uint64
	// peers, when set, are the only ones asked (a probe); else askOrder.
	peers []peer.ID
}

// backfillResult is what a fetch hands the orderer: verified messages of
// one gap, or (done) the end of the fetch.
type backfillResult struct {
	author  peer.ID
	session uint64
	msgs    []*pb.Message
	done    bool
}

// fetch asks peers for g's messages and hands what it gets to out, then
// reports done; it stops asking after within, and stops altogether when
// ctx (the orderer's) is done.
func (t *topic) fetch(ctx context.Context, g gap, out chan<- backfillResult, within time.Duration) {
	defer t.wg.Done()
	send := func(r backfillResult) bool {
		select {
		case out <- r:
			return true
		case <-ctx.Done():
			return false
		}
	}
	defer send(backfillResult{author: g.author, session: g.session, done: true})
	actx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	got := map[uint64]bool{}
	lo := g.first
	peers := g.peers
	if peers == nil {
		peers = t.askOrder(g.author)
	}
	for _, p := range peers {
		for lo <= g.last && actx.Err() == nil {
			msgs, err := t.s.ask(actx, p, backfillRequest{topic: t.name, author: g.author, session: g.session, first: lo, last: g.last})
			if err != nil {
				t.s.log.Debug("backfill", "topic", t.name, "peer", p, "err", err)
				break
			}
			if len(msgs) > 0 && !send(backfillResult{author: g.author, session: g.session, msgs: msgs}) {
				return
			}
			for _, m := range msgs {
				env, _ := decodeEnvelope(m.GetData()) // checked by ask
				got[env.seq] = true
			}
			next := lo
			for next <= g.last && got[next] {
				next++
			}
			if next == lo {
				break // this peer holds no more of it
			}
			lo = next
		}
		if lo > g.last || actx.Err() != nil {
			return
		}
	}
}

// askOrder is whom a gap of author's is asked for: the author when
// connected, then this topic's mesh, then the other peers that follow or
// relay it, at most askPeers.
func (t *topic) askOrder(author peer.ID) []peer.ID {
	var out []peer.ID
	seen := map[peer.ID]bool{t.s.self: true}
	add := func(p peer.ID) {
		if len(out) < askPeers && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	switch t.s.cfg.Host.Network().Connectedness(author) {
	case network.Connected, network.Limited:
		add(author)
	}
	following := t.peersFollowing()
	inFollowing := map[peer.ID]bool{}
	for _, p := range following {
		inFollowing[p] = true
	}
	for _, ps := range t.s.mesh.peers(t.name) {
		if p, err := peer.Decode(ps); err == nil && inFollowing[p] {
			add(p)
		}
	}
	for _, p := range following {
		add(p)
	}
	return out
}

// ask sends one request to p and returns the messages of its reply, each
// checked as gossip is; a reply that breaks the protocol or carries a
// message that fails a check is an error, and none of it is used.
func (s *Service) ask(ctx context.Context, p peer.ID, req backfillRequest) ([]*pb.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	st, err := s.cfg.Host.NewStream(allowLimited(ctx), p, BackfillID)
	if err != nil {
		return nil, fmt.Errorf("request backfill from %s: open stream: %w", p, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	defer func() { _ = st.Close() }()
	if d, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(d)
	}
	s.backfillStats.asked.Add(1)
	if err := protocol.WriteFrame(st, frameBackfillRequest, req.encode()); err != nil {
		return nil, fmt.Errorf("request backfill from %s: %w", p, err)
	}
	_ = st.CloseWrite()
	msgs, err := s.readReply(bufio.NewReader(st), req)
	if err != nil {
		_ = st.Reset()
		s.backfillStats.badReplies.Add(1)
		return nil, fmt.Errorf("backfill reply from %s: %w", p, err)
	}
	return msgs, nil
}

// readReply reads a reply to req up to its end frame and checks it.
func (s *Service) readReply(r *bufio.Reader, req backfillRequest) ([]*pb.Message, error) {
	var out []*pb.Message
	bytes := 0
	last := uint64(0)
	for {
		typ, payload, err := protocol.ReadFrame(r, maxRPC)
		if err != nil {
			return nil, err
		}
		switch typ {
		case frameBackfillEnd:
			return out, nil
		case frameBackfillMessage:
		default:
			return nil, fmt.Errorf("frame type %d", typ)
		}
		bytes += len(payload)
		if len(out) >= maxBackfillReply || (len(out) > 0 && bytes > maxBackfillBytes) {
			return nil, errors.New("reply over its cap")
		}
		m := new(pb.Message)
		if err := proto.Unmarshal(payload, m); err != nil {
			return nil, fmt.Errorf("message: %w", err)
		}
		seq, err := s.checkBackfilled(m, req)
		if err != nil {
			return nil, err
		}
		if seq <= last {
			return nil, fmt.Errorf("message %d after %d: out of order", seq, last)
		}
		last = seq
		out = append(out, m)
	}
}

// checkBackfilled applies gossip's checks (validate, and gossipsub's
// StrictSign signature check) to a message from a backfill reply, and
// that it is what req asked for; it returns its sequence number.
func (s *Service) checkBackfilled(m *pb.Message, req backfillRequest) (uint64, error) {
	if m.GetTopic() != req.topic {
		return 0, s.refuseBackfill(ReasonMalformed, fmt.Errorf("message of topic %q", m.GetTopic()))
	}
	author, err := peer.IDFromBytes(m.GetFrom())
	if err != nil || author != req.author {
		return 0, s.refuseBackfill(ReasonMalformed, errors.New("message of another author"))
	}
	if err := verifySignature(m); err != nil {
		return 0, s.refuseBackfill(ReasonMalformed, fmt.Errorf("signature: %w", err))
	}
	if author != s.self {
		if st, ok := s.cfg.Members.WaitVerdict(doneCtx, author); ok && st != events.StateMember {
			return 0, s.refuseBackfill(ReasonAuthor, errors.New("author is no member"))
		}
	}
	if s.cfg.Policy != nil && !s.cfg.Policy.MayPublish(author, req.topic) {
		return 0, s.refuseBackfill(ReasonPolicy, errors.New("author may not publish here"))
	}
	env, err := decodeEnvelope(m.GetData())
	if err != nil || len(env.data) > s.cfg.Limits.MaxSize {
		return 0, s.refuseBackfill(ReasonMalformed, errors.New("not a topic message or over the size limit"))
	}
	if env.session != req.session || env.seq < req.first || env.seq > req.last {
		return 0, s.refuseBackfill(ReasonMalformed, fmt.Errorf("message %d of session %x: not asked for", env.seq, env.session))
	}
	return env.seq, nil
}

func (s *Service) refuseBackfill(r Reason, err error) error {
	s.refuse(r, pubsub.ValidationReject)
	return err
}

// verifySignature checks m's signature as gossipsub does under StrictSign
// (its sign.go: the message without Signature and Key, marshaled, after
// pubsub.SignPrefix, signed by From's key, which is Key when set).
// TestBackfillSignatureMatchesGossipsub checks it against messages
// gossipsub signed and accepted.
func verifySignature(m *pb.Message) error {
	if len(m.GetSignature()) == 0 || len(m.GetSeqno()) == 0 {
		return errors.New("unsigned")
	}
	id, err := peer.IDFromBytes(m.GetFrom())
	if err != nil {
		return fmt.Errorf("author: %w", err)
	}
	var key crypto.PubKey
	if m.Key == nil {
		key, err = id.ExtractPublicKey()
	} else {
		key, err = crypto.UnmarshalPublicKey(m.Key)
		if err == nil && !id.MatchesPublicKey(key) {
			err = errors.New("key does not match the author")
		}
	}
	if err != nil {
		return fmt.Errorf("author's key: %w", err)
	}
	if key == nil {
		return errors.New("author's key: none")
	}
	xm := proto.CloneOf(m)
	xm.Signature, xm.Key = nil, nil
	b, err := proto.Marshal(xm)
	if err != nil {
		return fmt.Errorf("marshal: %w", err)
	}
	ok, err := key.Verify(append([]byte(pubsub.SignPrefix), b...), m.GetSignature())
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("invalid signature")
	}
	return nil
}
