package topics

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/protocol"
)

func FuzzDecodeBackfillRequest(f *testing.F) {
	author := peer.ID("\x00\x24\x08\x01\x12\x20" + string(make([]byte, 32)))
	f.Add(backfillRequest{topic: "t", author: author, session: 1, first: 1, last: 10}.encode())
	f.Add([]byte{1, 0, 1, 't', 0})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeBackfillRequest(b)
		if err != nil {
			return
		}
		if r.first == 0 || r.last < r.first || r.last-r.first >= maxBackfillRange || ValidName(r.topic) != nil {
			t.Fatalf("accepted %+v", r)
		}
		again, err := decodeBackfillRequest(r.encode())
		if err != nil || again != r {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}

// allMembers says every peer is a member.
type allMembers struct{}

func (allMembers) WaitVerdict(context.Context, peer.ID) (events.State, bool) {
	return events.StateMember, true
}

// signedMessages returns n messages that a stock gossipsub signed and
// delivered (StrictSign), as the author's own subscription got them.
func signedMessages(t *testing.T, n int) []*pb.Message {
	t.Helper()
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMessageSignaturePolicy(pubsub.StrictSign))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := ps.Join("t")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := pt.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	var out []*pb.Message
	for i := 1; i <= n; i++ {
		if err := pt.Publish(ctx, envelope{session: 7, seq: uint64(i), data: []byte("x")}.encode()); err != nil {
			t.Fatal(err)
		}
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Message)
	}
	return out
}

// verifySignature accepts what gossipsub signed and refuses any change:
// the check that its signing (sign.go) is still what verifySignature
// mirrors.
func TestBackfillSignatureMatchesGossipsub(t *testing.T) {
	m := signedMessages(t, 1)[0]
	if err := verifySignature(m); err != nil {
		t.Fatalf("gossipsub's own message: %v", err)
	}
	bad := proto.CloneOf(m)
	bad.Data = envelope{session: 7, seq: 1, data: []byte("y")}.encode()
	if verifySignature(bad) == nil {
		t.Fatal("changed data accepted")
	}
	unsigned := proto.CloneOf(m)
	unsigned.Signature = nil
	if verifySignature(unsigned) == nil {
		t.Fatal("unsigned message accepted")
	}
}

// A reply is checked whole: messages of the range in order are taken; one
// outside the range, repeated, or tampered with fails the reply.
func TestBackfillReplyChecks(t *testing.T) {
	msgs := signedMessages(t, 3)
	author, _ := peer.IDFromBytes(msgs[0].GetFrom())
	s := &Service{cfg: Config{Members: allMembers{}, Limits: DefaultLimits()}, log: slog.New(slog.DiscardHandler)}
	req := backfillRequest{topic: "t", author: author, session: 7, first: 1, last: 2}
	reply := func(ms ...*pb.Message) *bufio.Reader {
		var b bytes.Buffer
		for _, m := range ms {
			raw, _ := proto.Marshal(m)
			_ = protocol.WriteFrame(&b, frameBackfillMessage, raw)
		}
		_ = protocol.WriteFrame(&b, frameBackfillEnd)
		return bufio.NewReader(&b)
	}
	if got, err := s.readReply(reply(msgs[0], msgs[1]), req); err != nil || len(got) != 2 {
		t.Fatalf("good reply: %d messages, %v", len(got), err)
	}
	tampered := proto.CloneOf(msgs[1])
	tampered.Data = envelope{session: 7, seq: 2, data: []byte("forged")}.encode()
	for name, r := range map[string]*bufio.Reader{
		"out of range": reply(msgs[0], msgs[2]),
		"repeated":     reply(msgs[0], msgs[0]),
		"tampered":     reply(msgs[0], tampered),
		"no end":       bufio.NewReader(bytes.NewReader(nil)),
	} {
		if got, err := s.readReply(r, req); err == nil {
			t.Fatalf("%s: accepted %d messages", name, len(got))
		}
	}
	other := req
	other.session = 8
	if _, err := s.readReply(reply(msgs[0]), other); err == nil {
		t.Fatal("another session's message accepted")
	}
}

// The store answers a range in order, drops what is past its window, and
// caps a reply.
func TestBackfillStore(t *testing.T) {
	msgs := signedMessages(t, 3)
	author, _ := peer.IDFromBytes(msgs[0].GetFrom())
	st := newStore(time.Minute)
	now := time.Unix(1000, 0)
	st.add(msgs[2], now)
	st.add(msgs[0], now.Add(time.Second))
	st.add(msgs[0], now.Add(time.Second)) // held already
	req := backfillRequest{topic: "t", author: author, session: 7, first: 1, last: 3}
	if got := st.lookup(req, now.Add(2*time.Second)); len(got) != 2 || got[0] != msgs[0] || got[1] != msgs[2] {
		t.Fatalf("lookup: %d messages, want seq 1 and 3", len(got))
	}
	if got := st.lookup(req, now.Add(time.Minute+500*time.Millisecond)); len(got) != 1 || got[0] != msgs[0] {
		t.Fatalf("after the window of the first added: %d messages, want seq 1", len(got))
	}
	if got := st.lookup(req, now.Add(2*time.Minute)); len(got) != 0 || st.len() != 0 {
		t.Fatalf("after the window: %d messages, %d held", len(got), st.len())
	}
	st.maxN = 2
	for _, m := range msgs {
		st.add(m, now.Add(3*time.Minute))
	}
	if st.len() != 2 {
		t.Fatalf("held %d over a cap of 2", st.len())
	}
}

// A backfilled message fills a gap in order; a copy of a delivered one is
// dropped without counting late, while one given up as missed counts.
func TestOrderBackfilled(t *testing.T) {
	tp, f := testTopic(64)
	o := orderer{t: tp, pubs: map[peer.ID]*pubState{}}
	now := time.Unix(1000, 0)
	o.add("a", envelope{session: 1, seq: 1}, now)
	o.add("a", envelope{session: 1, seq: 4}, now)
	o.put("a", envelope{session: 1, seq: 2}, now, true)
	o.put("a", envelope{session: 1, seq: 3}, now, true)
	if got := seqs(f); len(got) != 4 || got[3] != 4 {
		t.Fatalf("delivered %v, want [1 2 3 4]", got)
	}
	o.add("a", envelope{session: 1, seq: 2}, now) // the other path's copy
	o.put("a", envelope{session: 9, seq: 5}, now, true)
	if got := seqs(f); len(got) != 0 || tp.late.Load() != 0 || tp.backfilled.Load() != 2 {
		t.Fatalf("delivered %v, late %d, backfilled %d; want nothing, 0, 2", got, tp.late.Load(), tp.backfilled.Load())
	}
	o.add("a", envelope{session: 1, seq: 7}, now)
	o.tick(now.Add(tp.s.cfg.Limits.Hold))
	o.add("a", envelope{session: 1, seq: 5}, now)
	if got := seqs(f); len(got) != 1 || got[0] != 7 || tp.late.Load() != 1 {
		t.Fatalf("delivered %v, late %d; want [7], 1", got, tp.late.Load())
	}
}

// A peer has at most servePerPeer requests served at once and serveBurst
// in a row; refused calls release their place too.
func TestServeLimits(t *testing.T) {
	var l serveLimits
	now := time.Unix(1000, 0)
	for i := 0; i < servePerPeer; i++ {
		if !l.allow("a", now) {
			t.Fatalf("request %d refused", i)
		}
	}
	if l.allow("a", now) {
		t.Fatal("one more than servePerPeer at once allowed")
	}
	if !l.allow("b", now) {
		t.Fatal("another peer refused")
	}
	l.done("b")
	for i := 0; i <= servePerPeer; i++ {
		l.done("a")
	}
	n := servePerPeer
	for ; n < 100 && l.allow("a", now); n++ {
		l.done("a")
	}
	if n != serveBurst {
		t.Fatalf("%d in a row allowed, want the burst %d", n, serveBurst)
	}
	l.done("a")
	if len(l.active) != 0 {
		t.Fatalf("places held after every done: %v", l.active)
	}
}
