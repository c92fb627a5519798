package topics

import (
	"context"
	"sort"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"github.com/overlay-net/overlay/events"
)

// Reason is why a message was refused.
type Reason string

// Reasons a message is refused, each counted (Stats).
const (
	ReasonForwarder Reason = "forwarder-not-member" // the peer it came from did not pass the handshake
	ReasonAuthor    Reason = "author-not-member"    // its author is known not to be a member
	ReasonPolicy    Reason = "policy"               // the access policy does not let its author publish there
	ReasonMalformed Reason = "malformed"            // not a topic envelope, or over Limits.MaxSize
	ReasonRate      Reason = "rate"                 // its author sent above Limits.Rate
	// ReasonOverload: gossipsub's validation queue was full (it drops
	// the message unseen; another copy may still come).
	ReasonOverload Reason = "overload"
)

// memberWait bounds how long a message waits for its forwarder's
// handshake, which runs alongside gossipsub's first exchange.
const memberWait = 10 * time.Second

// validate is gossipsub's validator for every topic. Gossipsub has checked
// the author's signature (StrictSign) and drops duplicates before this
// runs. Reject counts against the peer the message came from; Ignore
// drops it without blame.
func (s *Service) validate(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	topic := m.GetTopic()
	author := m.GetFrom()
	if author.Validate() != nil {
		return s.refuse(ReasonMalformed, pubsub.ValidationReject)
	}
	if from != s.self && !s.forwarderIsMember(ctx, from) {
		return s.refuse(ReasonForwarder, pubsub.ValidationReject)
	}
	if author != from && author != s.self {
		// An author not connected here was checked by the member that
		// first took the message from it; one known here to be no member
		// is refused. Certificates (Policy) make this check whole.
		if st, ok := s.cfg.Members.WaitVerdict(doneCtx, author); ok && st != events.StateMember {
			return s.refuse(ReasonAuthor, pubsub.ValidationReject)
		}
	}
	if s.cfg.Policy != nil && !s.cfg.Policy.MayPublish(author, topic) {
		return s.refuse(ReasonPolicy, pubsub.ValidationReject)
	}
	if e, err := decodeEnvelope(m.GetData()); err != nil || len(e.data) > s.cfg.Limits.MaxSize {
		return s.refuse(ReasonMalformed, pubsub.ValidationReject)
	}
	if author != s.self && !s.rates.allow(topic, author, time.Now()) {
		if author == from {
			return s.refuse(ReasonRate, pubsub.ValidationReject)
		}
		// The forwarder is not to blame for what its author sends.
		return s.refuse(ReasonRate, pubsub.ValidationIgnore)
	}
	if from == s.self && s.store != nil {
		// The node's own message: gossipsub's raw tracer does not see
		// these (DeliverMessage), and this is the last check it passes.
		s.store.add(m.Message, time.Now())
	}
	return pubsub.ValidationAccept
}

// forwarderIsMember reports whether the peer a message came from is a
// member. Gossipsub marks a message seen before this runs, so a copy
// refused here is lost even if another member forwards it too: a member
// whose verdict the node dropped when its connection closed, with its
// last messages still in validation, must not be refused. So a peer seen
// a member within vouchFor counts as one; other peers without a verdict
// are waited for (their handshake runs alongside gossipsub's first
// exchange), up to memberWait.
func (s *Service) forwarderIsMember(ctx context.Context, p peer.ID) bool {
	now := time.Now()
	if st, ok := s.cfg.Members.WaitVerdict(doneCtx, p); ok {
		if st == events.StateMember {
			s.vouched.mark(p, now)
			return true
		}
		return false
	}
	if s.vouched.recent(p, now) {
		return true
	}
	wctx, cancel := context.WithTimeout(ctx, memberWait)
	defer cancel()
	st, ok := s.cfg.Members.WaitVerdict(wctx, p)
	if ok && st == events.StateMember {
		s.vouched.mark(p, time.Now())
		return true
	}
	return false
}

// vouchFor is how long a peer seen a member still counts as one once its
// verdict is gone (its connection closed).
const vouchFor = time.Minute

// maxVouched bounds the peers remembered as members.
const maxVouched = 16384

// vouched remembers when each peer was last seen a member.
type vouched struct {
	mu sync.Mutex
	m  map[peer.ID]time.Time
}

func (v *vouched) mark(p peer.ID, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[peer.ID]time.Time{}
	}
	if _, ok := v.m[p]; !ok && len(v.m) >= maxVouched {
		for q, at := range v.m {
			if now.Sub(at) > vouchFor {
				delete(v.m, q)
			}
		}
		if len(v.m) >= maxVouched {
			return // full of recent members: the peer is waited for instead
		}
	}
	v.m[p] = now
}

func (v *vouched) recent(p peer.ID, now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	at, ok := v.m[p]
	return ok && now.Sub(at) <= vouchFor
}

func (s *Service) refuse(r Reason, v pubsub.ValidationResult) pubsub.ValidationResult {
	if s.stats.add(r) == 1 {
		s.log.Warn("topic message refused", "reason", r)
	}
	return v
}

// counters counts refusals by reason.
type counters struct {
	mu sync.Mutex
	m  map[Reason]uint64
}

func (c *counters) add(r Reason) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[Reason]uint64{}
	}
	c.m[r]++
	return c.m[r]
}

func (c *counters) snapshot() map[Reason]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[Reason]uint64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// subFilter sees the subscriptions peers announce, so that a router
// relays the topics its members follow; it filters nothing out.
type subFilter struct{ s *Service }

func (subFilter) CanSubscribe(string) bool { return true }

// FilterIncomingSubscriptions runs in gossipsub's event loop: it must not
// block.
func (f subFilter) FilterIncomingSubscriptions(from peer.ID, subs []*pb.RPC_SubOpts) ([]*pb.RPC_SubOpts, error) {
	if f.s.cfg.Router {
		for _, sub := range subs {
			if sub.GetSubscribe() {
				f.s.wantRelay(sub.GetTopicid(), from)
			}
		}
	}
	return subs, nil
}

// tracer counts what gossipsub sends and drops, and keeps the mesh view.
type tracer struct{ s *Service }

func (tracer) RecvRPC(*pubsub.RPC)                         {}
func (tracer) OnNewOutboundStream(peer.ID, libp2pproto.ID) {}

// OnClosedOutboundStream is gossipsub's word that a peer is gone: it then
// removes the peer from every mesh without a Prune (gossipsub.go,
// GossipSubRouter.OnClosedOutboundStream), so the view drops it too.
func (t tracer) OnClosedOutboundStream(p peer.ID) { t.s.mesh.drop(p) }
func (tracer) Join(string)                        {}
func (tracer) Leave(string)                       {}

// Graft and Prune keep the mesh view (Topics' Mesh). A graft also has the
// topic's follower ask the new mesh peer for what it may have missed
// (topic.grafted): a member back from a partition is grafted again.
func (t tracer) Graft(p peer.ID, name string) {
	t.s.mesh.set(name, p, true)
	if v, ok := t.s.joined.Load(name); ok {
		v.(*topic).grafted(p)
	}
}
func (t tracer) Prune(p peer.ID, topic string) { t.s.mesh.set(topic, p, false) }

func (tracer) ValidateMessage(*pubsub.Message) {}

// DeliverMessage sees every message gossipsub accepted, the node's own,
// followed and relayed topics alike (its notifySubs): the backfill store
// keeps them. It runs in gossipsub's event loop.
func (t tracer) DeliverMessage(m *pubsub.Message) {
	if t.s.store != nil && m.Message != nil {
		t.s.store.add(m.Message, time.Now())
	}
}

// RejectMessage counts what gossipsub drops for want of room.
func (t tracer) RejectMessage(_ *pubsub.Message, reason string) {
	if reason == pubsub.RejectValidationQueueFull || reason == pubsub.RejectValidationThrottled {
		t.s.refuse(ReasonOverload, pubsub.ValidationIgnore)
	}
}

func (tracer) DuplicateMessage(*pubsub.Message)                     {}
func (tracer) ThrottlePeer(peer.ID)                                 {}
func (tracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}

// UndeliverableMessage counts messages gossipsub could not hand to this
// node's own subscription (its buffer full).
func (t tracer) UndeliverableMessage(*pubsub.Message) {
	t.s.refuse(ReasonOverload, pubsub.ValidationIgnore)
}

// SendRPC counts what gossipsub sends, its own framing aside.
func (t tracer) SendRPC(rpc *pubsub.RPC, _ peer.ID) {
	t.s.wire.rpcs.Add(1)
	t.s.wire.bytes.Add(uint64(proto.Size(&rpc.RPC)))
}

// DropRPC counts RPCs gossipsub dropped because a peer's queue was full.
func (t tracer) DropRPC(*pubsub.RPC, peer.ID) { t.s.wire.dropped.Add(1) }

// meshView is which peers are in this node's mesh of each topic, as
// gossipsub's trace tells it.
type meshView struct {
	mu sync.Mutex
	m  map[string]map[peer.ID]struct{}
}

func (v *meshView) set(topic string, p peer.ID, in bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[string]map[peer.ID]struct{}{}
	}
	ps := v.m[topic]
	if in {
		if ps == nil {
			ps = map[peer.ID]struct{}{}
			v.m[topic] = ps
		}
		ps[p] = struct{}{}
		return
	}
	delete(ps, p)
	if len(ps) == 0 {
		delete(v.m, topic)
	}
}

func (v *meshView) drop(p peer.ID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for topic, ps := range v.m {
		delete(ps, p)
		if len(ps) == 0 {
			delete(v.m, topic)
		}
	}
}

func (v *meshView) peers(topic string) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]string, 0, len(v.m[topic]))
	for p := range v.m[topic] {
		out = append(out, p.String())
	}
	sort.Strings(out)
	return out
}
