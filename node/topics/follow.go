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
	// Only mesh peers still following count: the view learns of a peer
	// that left from gossipsub's trace, a moment after its subscription
	// ends.
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
