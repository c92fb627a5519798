package topics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/node/topics"
	"github.com/overlay-net/overlay/protocol"
)

// rawMember is a member node whose topics are not the overlay's but a
// stock gossipsub on its host, which sends whatever it is told to.
func rawMember(t *testing.T, victim *node.Node, topic string) (*node.Node, *pubsub.Topic) {
	t.Helper()
	m := nt.Peer(t, nil, nt.WithDirect(0), noTopics)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, m.Host(), pubsub.WithMaxMessageSize(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := ps.Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, m, victim)
	nt.Eventually(t, 20*time.Second, "raw member sees the victim follow", func() bool {
		for _, p := range pt.ListPeers() {
			if p == victim.ID() {
				return true
			}
		}
		return false
	})
	return m, pt
}

// A member that publishes far above the rate gets its excess refused, is
// pruned and graylisted, while another member's messages keep arriving.
func TestFlooderPruned(t *testing.T) {
	low := withLimits(func(l *topics.Limits) { l.Rate, l.Burst = 20, 10 })
	victim := nt.Peer(t, nil, nt.WithDirect(0), low)
	honest := nt.Peer(t, nil, nt.WithDirect(0), low)
	connect(t, honest, victim)
	sub := follow(t, victim, "t", 0)
	if err := honest.Topics().Join("t"); err != nil {
		t.Fatal(err)
	}
	flooder, pt := rawMember(t, victim, "t")
	for i := uint64(1); i <= 200; i++ {
		if err := pt.Publish(context.Background(), topics.Encode(1, i, []byte("flood"))); err != nil {
			t.Fatalf("flood %d: %v", i, err)
		}
	}
	nt.Eventually(t, 20*time.Second, "flooder graylisted", func() bool {
		s, ok := victim.Topics().Score(flooder.ID())
		return ok && s < topics.GraylistThreshold
	})
	if victim.Topics().Stats()[topics.ReasonRate] == 0 {
		t.Fatal("no message refused for its rate")
	}
	for _, ti := range victim.Topics().Topics() {
		for _, p := range ti.Mesh {
			if p == flooder.ID().String() {
				t.Fatal("flooder still in the victim's mesh")
			}
		}
	}
	waitPeers(t, honest, "t", victim.ID())
	publish(t, honest, "t", "still here")
	for {
		m := recv(t, sub)
		if m.From == honest.ID() {
			if string(m.Data) != "still here" {
				t.Fatalf("honest member's message: %q", m.Data)
			}
			break
		}
	}
}

// A message over MaxData from a member is refused as malformed and counts
// against it; one of exactly MaxData arrives.
func TestOversizeRefused(t *testing.T) {
	victim := nt.Peer(t, nil, nt.WithDirect(0))
	sub := follow(t, victim, "t", 0)
	m, pt := rawMember(t, victim, "t")
	if err := pt.Publish(context.Background(), topics.Encode(1, 1, make([]byte, topics.MaxData+1))); err != nil {
		t.Fatalf("publish oversize: %v", err)
	}
	nt.Eventually(t, 20*time.Second, "oversize refused", func() bool {
		return victim.Topics().Stats()[topics.ReasonMalformed] > 0
	})
	if err := pt.Publish(context.Background(), topics.Encode(1, 2, make([]byte, topics.MaxData))); err != nil {
		t.Fatalf("publish at the cap: %v", err)
	}
	got := recv(t, sub)
	if got.From != m.ID() || got.Seq != 2 || len(got.Data) != topics.MaxData {
		t.Fatalf("got seq %d, %d bytes from %s; want seq 2, %d bytes", got.Seq, len(got.Data), got.From, topics.MaxData)
	}
}

// Limits.MaxSize (--topic-max-size) lowers the cap: a peer's message over
// it is refused, one at it arrives, and publishing over it fails here.
func TestMaxSizeLimit(t *testing.T) {
	const max = 100
	victim := nt.Peer(t, nil, nt.WithDirect(0), withLimits(func(l *topics.Limits) { l.MaxSize = max }))
	sub := follow(t, victim, "t", 0)
	_, pt := rawMember(t, victim, "t")
	if err := pt.Publish(context.Background(), topics.Encode(1, 1, make([]byte, max+1))); err != nil {
		t.Fatalf("publish over the limit: %v", err)
	}
	nt.Eventually(t, 20*time.Second, "over the limit refused", func() bool {
		return victim.Topics().Stats()[topics.ReasonMalformed] > 0
	})
	if err := pt.Publish(context.Background(), topics.Encode(1, 2, make([]byte, max))); err != nil {
		t.Fatalf("publish at the limit: %v", err)
	}
	if got := recv(t, sub); got.Seq != 2 || len(got.Data) != max {
		t.Fatalf("got seq %d, %d bytes; want seq 2, %d bytes", got.Seq, len(got.Data), max)
	}
	if _, err := victim.Topics().Publish(context.Background(), "t", make([]byte, max+1)); !errors.Is(err, protocol.ErrTooLarge) {
		t.Fatalf("local publish over the limit: %v, want ErrTooLarge", err)
	}
}

func TestLimitsValidate(t *testing.T) {
	for _, fn := range []func(*topics.Limits){
		func(l *topics.Limits) { l.MaxSize = 0 },
		func(l *topics.Limits) { l.MaxSize = topics.MaxData + 1 },
		func(l *topics.Limits) { l.History = 0 },
		func(l *topics.Limits) { l.History = topics.MaxHistory + 1 },
		func(l *topics.Limits) { l.Backfill = -time.Second },
		func(l *topics.Limits) { l.Backfill = topics.MaxBackfill + time.Second },
	} {
		l := topics.DefaultLimits()
		fn(&l)
		if l.Validate() == nil {
			t.Errorf("%+v accepted", l)
		}
	}
	if err := topics.DefaultLimits().Validate(); err != nil {
		t.Fatal(err)
	}
}

// A follower that does not read loses what overflows its queue, counted,
// while another follower of the same topic gets everything.
func TestSlowFollowerCountsGap(t *testing.T) {
	pub := nt.Peer(t, nil, nt.WithDirect(0))
	n := nt.Peer(t, nil, nt.WithDirect(0))
	connect(t, pub, n)
	slow, fast := follow(t, n, "t", 4), follow(t, n, "t", 0)
	if err := pub.Topics().Join("t"); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, pub, "t", n.ID())
	const count = 40
	for i := 0; i < count; i++ {
		publish(t, pub, "t", "x")
	}
	for i := 1; i <= count; i++ {
		if m := recv(t, fast); m.Seq != uint64(i) {
			t.Fatalf("fast follower: seq %d, want %d", m.Seq, i)
		}
	}
	if st := slow.Stats(); st.Delivered != 4 || st.Dropped != count-4 {
		t.Fatalf("slow follower %+v, want 4 delivered, %d dropped", st, count-4)
	}
	for i := 1; i <= 4; i++ {
		if m := recv(t, slow); m.Seq != uint64(i) {
			t.Fatalf("slow follower: seq %d, want %d", m.Seq, i)
		}
	}
	if ti := n.Topics().Topics(); len(ti) != 1 || ti[0].Dropped != count-4 {
		t.Fatalf("topic info %+v, want %d dropped", ti, count-4)
	}
}
