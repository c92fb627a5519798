package topics

import (
	"sync"
	"time"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

// Bounds of the backfill store, for every topic together: it holds the
// messages of the last Limits.Backfill, but never more than
// storeMessages messages nor storeBytes bytes of them (their protobuf
// size); the oldest go first. Each message also costs about 200 bytes of
// bookkeeping, so the store holds at most about 38 MiB.
const (
	storeMessages = 32768
	storeBytes    = 32 << 20
)

type storeKey struct {
	topic        string
	author       peer.ID
	session, seq uint64
}

type stored struct {
	key  storeKey
	m    *pb.Message
	size int
	at   time.Time
}

// store keeps the messages this node delivered or relayed recently, signed
// as their authors sent them, to answer backfill requests. It is safe for
// concurrent use; gossipsub's event loop adds to it, so add never waits
// on anything but its lock.
type store struct {
	window time.Duration
	maxN   int
	maxB   int

	mu    sync.Mutex
	q     []*stored // oldest first, from head
	head  int
	bytes int
	idx   map[storeKey]*stored
}

func newStore(window time.Duration) *store {
	return &store{window: window, maxN: storeMessages, maxB: storeBytes, idx: map[storeKey]*stored{}}
}

// add keeps m, a message validated by gossipsub or by backfill, unless it
// is not a topic envelope or is held already.
func (s *store) add(m *pb.Message, now time.Time) {
	env, err := decodeEnvelope(m.GetData())
	if err != nil {
		return
	}
	author, err := peer.IDFromBytes(m.GetFrom())
	if err != nil {
		return
	}
	k := storeKey{topic: m.GetTopic(), author: author, session: env.session, seq: env.seq}
	size := proto.Size(m)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.idx[k]; ok {
		return
	}
	e := &stored{key: k, m: m, size: size, at: now}
	s.q = append(s.q, e)
	s.idx[k] = e
	s.bytes += size
	s.evictLocked(now)
}

// evictLocked drops the oldest messages past the window, the count or the
// bytes.
func (s *store) evictLocked(now time.Time) {
	for s.head < len(s.q) {
		e := s.q[s.head]
		if now.Sub(e.at) <= s.window && len(s.q)-s.head <= s.maxN && s.bytes <= s.maxB {
			break
		}
		s.q[s.head] = nil
		s.head++
		s.bytes -= e.size
		if s.idx[e.key] == e {
			delete(s.idx, e.key)
		}
	}
	// Compact once the dropped half outweighs the live one.
	if s.head > 1024 && s.head > len(s.q)/2 {
		n := copy(s.q, s.q[s.head:])
		clear(s.q[n:])
		s.q = s.q[:n]
		s.head = 0
	}
}

// lookup returns the messages of r it holds, in sequence, up to
// maxBackfillReply of them and maxBackfillBytes (at least one).
func (s *store) lookup(r backfillRequest, now time.Time) []*pb.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evictLocked(now)
	var out []*pb.Message
	bytes := 0
	k := storeKey{topic: r.topic, author: r.author, session: r.session}
	for seq := r.first; seq <= r.last && len(out) < maxBackfillReply; seq++ {
		k.seq = seq
		e, ok := s.idx[k]
		if !ok {
			continue
		}
		if len(out) > 0 && bytes+e.size > maxBackfillBytes {
			break
		}
		out = append(out, e.m)
		bytes += e.size
	}
	return out
}

// len returns how many messages the store holds.
func (s *store) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.q) - s.head
}
