package topics

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// Message is one topic message as a follower receives it.
type Message struct {
	Topic string  `json:"topic"`
	From  peer.ID `json:"from"`
	// Seq numbers the publisher's messages to this topic, from 1 at each
	// start of the publisher; a follower gets them in this order.
	Seq  uint64 `json:"seq"`
	Data []byte `json:"data"`
	// Missed is how many of this publisher's messages right before this
	// one never arrived (lost beyond gossipsub's history, or refused).
	Missed   uint64    `json:"missed,omitempty"`
	Received time.Time `json:"received"`
}

// Bounds of the per-publisher ordering.
const (
	// maxHeld is how many messages one publisher may have waiting for an
	// earlier one; beyond it the missing ones are given up.
	maxHeld = 256
	// maxPublishers bounds the publishers a topic remembers; the one
	// silent longest is forgotten first.
	maxPublishers = 4096
	// publisherIdle is how long a silent publisher is remembered.
	publisherIdle = time.Hour
)

// topic is one joined topic.
type topic struct {
	s     *Service
	name  string
	pt    *pubsub.Topic
	limit *rate.Limiter // this node's own publishing

	pubMu  sync.Mutex // orders Publish calls
	pubSeq uint64

	published, delivered, missed, dropped, late atomic.Uint64
	// backfilled counts messages a backfill brought that were new here.
	backfilled atomic.Uint64
	// probeQ: peers newly in the topic's mesh (grafted), for the orderer.
	probeQ chan peer.ID

	mu        sync.Mutex
	followers map[*Sub]struct{}
	sub       *pubsub.Subscription // while followed
	relay     pubsub.RelayCancelFunc
	stopped   bool
	wg        sync.WaitGroup
	missedLog rate.Sometimes
}

func newTopic(s *Service, name string, pt *pubsub.Topic) *topic {
	return &topic{s: s, name: name, pt: pt, followers: map[*Sub]struct{}{}, probeQ: make(chan peer.ID, 16),
		limit:     rate.NewLimiter(rate.Limit(s.cfg.Limits.Rate), s.cfg.Limits.Burst),
		missedLog: rate.Sometimes{Interval: 10 * time.Second}}
}

// Sub is one local follower of a topic. Close ends it.
type Sub struct {
	t    *topic
	ch   chan Message
	done chan struct{}
	stop func() bool // stops the AfterFunc of the follower's context

	delivered, dropped, missed atomic.Uint64
	dropping                   bool // t.mu: drops since the last delivery
	dropRun                    uint64
}

// C is where the follower's messages arrive, in order per publisher; it
// closes when the follower ends.
func (s *Sub) C() <-chan Message { return s.ch }

// SubStats counts one follower's messages.
type SubStats struct {
	Delivered uint64 `json:"delivered"`
	// Dropped messages arrived but the follower's queue was full.
	Dropped uint64 `json:"dropped"`
	// Missed messages never arrived (Message.Missed summed).
	Missed uint64 `json:"missed"`
}

// Stats returns the follower's counts.
func (s *Sub) Stats() SubStats {
	return SubStats{Delivered: s.delivered.Load(), Dropped: s.dropped.Load(), Missed: s.missed.Load()}
}

// Close ends the follower: its channel closes, and the node leaves the
// topic's mesh when it was the last.
func (s *Sub) Close() {
	s.stop()
	t := s.t
	t.mu.Lock()
	if _, ok := t.followers[s]; !ok {
		t.mu.Unlock()
		return
	}
	delete(t.followers, s)
	close(s.ch)
	close(s.done)
	var sub *pubsub.Subscription
	if len(t.followers) == 0 && t.sub != nil {
		sub, t.sub = t.sub, nil
	}
	t.mu.Unlock()
	if sub != nil {
		sub.Cancel()
	}
}

// follow adds a local follower, subscribing in gossipsub for the first.
func (t *topic) follow(ctx context.Context, buffer int) (*Sub, error) {
	f := &Sub{t: t, ch: make(chan Message, buffer), done: make(chan struct{})}
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	if t.sub == nil {
		sub, err := t.pt.Subscribe(pubsub.WithBufferSize(256))
		if err != nil {
			t.mu.Unlock()
			return nil, err
		}
		t.sub = sub
		in := make(chan *pubsub.Message, 64)
		t.wg.Add(2)
		go t.read(sub, in)
		go t.order(in)
	}
	t.followers[f] = struct{}{}
	t.mu.Unlock()
	f.stop = context.AfterFunc(ctx, f.Close)
	return f, nil
}

// read hands gossipsub's messages to order until the subscription ends.
func (t *topic) read(sub *pubsub.Subscription, in chan<- *pubsub.Message) {
	defer t.wg.Done()
	defer close(in)
	for {
		m, err := sub.Next(t.s.ctx)
		if err != nil {
			return
		}
		in <- m
	}
}

// order puts each publisher's messages in sequence and hands them to the
// followers, until read closes in.
func (t *topic) order(in <-chan *pubsub.Message) {
	defer t.wg.Done()
	ctx, cancel := context.WithCancel(t.s.ctx)
	defer cancel() // ends the fetches, which t.wg waits for
	o := orderer{t: t, pubs: map[peer.ID]*pubState{}, ctx: ctx, bf: make(chan backfillResult, 16)}
	tick := time.NewTicker(min(t.s.cfg.Limits.Hold/4, backfillDelay/2))
	defer tick.Stop()
	for {
		select {
		case r := <-o.bf:
			o.backfilled(r, time.Now())
		case p := <-t.probeQ:
			o.probe(p, time.Now())
		case m, ok := <-in:
			if !ok {
				return
			}
			env, err := decodeEnvelope(m.GetData())
			author := m.GetFrom()
			if err != nil {
				continue // the validator refused it already
			}
			o.add(author, env, time.Now())
		case now := <-tick.C:
			o.tick(now)
		}
	}
}

type pubState struct {
	session uint64
	next    uint64 // the seq to deliver next; 0 until known
	held    map[uint64]Message
	since   time.Time // when held last became non-empty or made progress
	seen    time.Time
	// fetching: a backfill of the gap before the earliest held message
	// runs; triedNext and triedFirst are the gap (next, earliest held)
	// last asked for, which is not asked for again.
	fetching              bool
	triedNext, triedFirst uint64
	// skipLo..skipHi are the last run given up as missed: a copy of one
	// of them that comes later counts as late, any other older than next
	// is a duplicate.
	skipLo, skipHi uint64
}

// orderer is order's state: one goroutine owns it.
type orderer struct {
	t    *topic
	pubs map[peer.ID]*pubState
	// ctx and bf are for backfill (nil: none): ctx ends the fetches,
	// which hand their results to the orderer through bf.
	ctx     context.Context
	bf      chan backfillResult
	fetches int // running
}

func (o *orderer) add(from peer.ID, env envelope, now time.Time) { o.put(from, env, now, false) }

// put orders one message of from's; backfilled ones come from a fetch,
// for a session known already.
func (o *orderer) put(from peer.ID, env envelope, now time.Time, backfilled bool) {
	st := o.pubs[from]
	if backfilled && (st == nil || st.session != env.session) {
		return // the publisher restarted or was forgotten meanwhile
	}
	if st == nil || st.session != env.session {
		if st == nil && len(o.pubs) >= maxPublishers {
			o.evict()
		}
		st = &pubState{session: env.session, held: map[uint64]Message{}}
		o.pubs[from] = st
	}
	st.seen = now
	m := Message{Topic: o.t.name, From: from, Seq: env.seq, Data: env.data, Received: now}
	switch {
	case st.next != 0 && env.seq < st.next:
		if !backfilled && env.seq >= st.skipLo && env.seq <= st.skipHi {
			o.t.late.Add(1) // given up for missing already
		}
		return // else delivered already (the other path's copy)
	case st.next == env.seq:
		if backfilled {
			o.t.backfilled.Add(1)
		}
		o.deliver(m)
		st.next++
	default:
		if _, dup := st.held[env.seq]; backfilled && !dup {
			o.t.backfilled.Add(1)
		}
		if len(st.held) == 0 {
			st.since = now
		}
		st.held[env.seq] = m
		if st.next == 0 && env.seq == 1 {
			st.next = 1 // a session's first message: nothing came before
		}
	}
	o.drain(st, now)
	limit := maxHeld
	if st.fetching {
		limit = 4 * maxHeld // a backfill is about to fill the gap
	}
	if len(st.held) > limit {
		o.skip(st, now)
	}
	o.maybeFetch(from, st, now)
}

// maybeFetch starts a backfill of the gap before st's earliest held
// message once it is backfillDelay old (gossip may fill it first), unless
// one runs or this gap was asked for already.
func (o *orderer) maybeFetch(from peer.ID, st *pubState, now time.Time) {
	if o.bf == nil || o.t.s.store == nil || st.fetching || st.next == 0 || len(st.held) == 0 ||
		o.fetches >= maxFetches || now.Sub(st.since) < backfillDelay {
		return
	}
	first := earliest(st.held)
	if first <= st.next || (st.triedNext == st.next && st.triedFirst == first) {
		return
	}
	last := min(first-1, st.next+maxBackfillRange-1)
	st.fetching, st.triedNext, st.triedFirst = true, st.next, first
	o.fetches++
	o.t.wg.Add(1)
	go o.t.fetch(o.ctx, gap{author: from, session: st.session, first: st.next, last: last}, o.bf, o.t.s.cfg.Limits.Hold)
}

// grafted tells the orderer that p joined this node's mesh of the topic.
// It never blocks (gossipsub's event loop calls it): a full queue drops p.
func (t *topic) grafted(p peer.ID) {
	select {
	case t.probeQ <- p:
	default:
	}
}

// probe asks p, newly in the mesh, for each publisher's messages from the
// next one expected on, so that a member back from a partition gets what
// was published during it even when nothing newer comes to show the gap.
// Only publishers heard from within Limits.Backfill are asked for, and
// not while a fetch of theirs runs.
func (o *orderer) probe(p peer.ID, now time.Time) {
	if o.bf == nil || o.t.s.store == nil {
		return
	}
	for author, st := range o.pubs {
		if o.fetches >= maxFetches {
			return
		}
		if st.next == 0 || st.fetching || author == o.t.s.self || now.Sub(st.seen) > o.t.s.cfg.Limits.Backfill {
			continue
		}
		st.fetching = true
		o.fetches++
		o.t.wg.Add(1)
		g := gap{author: author, session: st.session, first: st.next, last: st.next + maxBackfillRange - 1, peers: []peer.ID{p}}
		go o.t.fetch(o.ctx, g, o.bf, o.t.s.cfg.Limits.Hold)
	}
}

// backfilled takes a fetch's result.
func (o *orderer) backfilled(r backfillResult, now time.Time) {
	if r.done {
		o.fetches--
		if st := o.pubs[r.author]; st != nil && st.session == r.session {
			st.fetching = false
		}
		return
	}
	for _, m := range r.msgs {
		env, err := decodeEnvelope(m.GetData())
		if err != nil {
			continue // checked by the fetch already
		}
		o.t.s.store.add(m, now)
		o.put(r.author, env, now, true)
	}
}

func earliest(held map[uint64]Message) uint64 {
	var first uint64
	for seq := range held {
		if first == 0 || seq < first {
			first = seq
		}
	}
	return first
}

// drain delivers held messages that are next in sequence.
func (o *orderer) drain(st *pubState, now time.Time) {
	for st.next != 0 {
		m, ok := st.held[st.next]
		if !ok {
			return
		}
		delete(st.held, st.next)
		o.deliver(m)
		st.next++
		st.since = now
	}
}

// skip gives up on the messages missing before the earliest held one.
func (o *orderer) skip(st *pubState, now time.Time) {
	first := earliest(st.held)
	if first == 0 {
		return
	}
	if st.next != 0 && first > st.next {
		gap := first - st.next
		st.skipLo, st.skipHi = st.next, first-1
		m := st.held[first]
		m.Missed = gap
		st.held[first] = m
		o.t.missed.Add(gap)
		o.t.missedLog.Do(func() {
			o.t.s.log.Warn("topic messages missed", "topic", o.t.name, "publisher", m.From, "count", gap)
		})
	}
	st.next = first
	o.drain(st, now)
}

// tick gives up on messages missing longer than Limits.Hold and forgets
// publishers silent for publisherIdle.
func (o *orderer) tick(now time.Time) {
	for p, st := range o.pubs {
		hold := o.t.s.cfg.Limits.Hold
		if st.next == 0 {
			// A publisher first heard mid-stream: nothing is known missing
			// yet, so its earliest message waits less for earlier ones.
			hold /= 10
		}
		o.maybeFetch(p, st, now)
		if len(st.held) > 0 && now.Sub(st.since) >= hold && !st.fetching {
			o.skip(st, now)
		}
		if len(st.held) == 0 && now.Sub(st.seen) > publisherIdle {
			delete(o.pubs, p)
		}
	}
}

func (o *orderer) evict() {
	var oldest peer.ID
	var at time.Time
	for p, st := range o.pubs {
		if at.IsZero() || st.seen.Before(at) {
			oldest, at = p, st.seen
		}
	}
	delete(o.pubs, oldest)
}

// deliver hands m to every follower that has room, counting the others'
// loss. A follower never blocks the topic.
func (o *orderer) deliver(m Message) {
	t := o.t
	t.delivered.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	for f := range t.followers {
		select {
		case f.ch <- m:
			f.delivered.Add(1)
			f.missed.Add(m.Missed)
			if f.dropping {
				t.s.log.Warn("topic follower caught up", "topic", t.name, "dropped", f.dropRun)
				f.dropping, f.dropRun = false, 0
			}
		default:
			f.dropped.Add(1)
			t.dropped.Add(1)
			if !f.dropping {
				t.s.log.Warn("topic follower fell behind: dropping messages", "topic", t.name, "buffer", cap(f.ch))
				f.dropping = true
			}
			f.dropRun++
		}
	}
}

// peersFollowing are the peers that follow or relay the topic and that gossipsub
// may send it to (its peer filter, mayJoin): gossipsub's own list holds
// every peer that announced the topic.
func (t *topic) peersFollowing() []peer.ID {
	var out []peer.ID
	for _, p := range t.pt.ListPeers() {
		if t.s.mayJoin(p, t.name) {
			out = append(out, p)
		}
	}
	return out
}

// info reports the topic for Topics.
func (t *topic) info() TopicInfo {
	ti := TopicInfo{Name: t.name, Peers: []string{}, Mesh: []string{}, Published: t.published.Load(), Delivered: t.delivered.Load(),
		Missed: t.missed.Load(), Dropped: t.dropped.Load(), Late: t.late.Load(),
		Backfilled: t.backfilled.Load()}
	peers := map[string]bool{}
	for _, p := range t.peersFollowing() {
		ti.Peers = append(ti.Peers, p.String())
		peers[p.String()] = true
	}
	// The trace has no event for a mesh peer that went away: only those
	// still following count.
	for _, p := range t.s.mesh.peers(t.name) {
		if peers[p] {
			ti.Mesh = append(ti.Mesh, p)
		}
	}
	t.mu.Lock()
	ti.Followers = len(t.followers)
	ti.Relayed = t.relay != nil
	t.mu.Unlock()
	return ti
}

// stop ends the topic's followers and leaves it.
func (t *topic) stop() {
	t.mu.Lock()
	t.stopped = true
	fs := make([]*Sub, 0, len(t.followers))
	for f := range t.followers {
		fs = append(fs, f)
	}
	relay := t.relay
	t.relay = nil
	t.mu.Unlock()
	for _, f := range fs {
		f.Close()
	}
	if relay != nil {
		relay()
	}
	t.wg.Wait()
	_ = t.pt.Close()
}
