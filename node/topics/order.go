package topics

import (
	"context"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The per-publisher ordering of a followed topic: order and its orderer
// put each publisher's messages in sequence, hold those that come early,
// fill gaps by backfill (backfill.go) and count what never comes.

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
