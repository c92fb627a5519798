package topics_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/node/topics"
	"github.com/overlay-net/overlay/relay"
)

// cut closes every connection between a and b and waits until neither
// side has one.
func cut(t *testing.T, a, b *node.Node) {
	t.Helper()
	_ = a.Host().Network().ClosePeer(b.ID())
	_ = b.Host().Network().ClosePeer(a.ID())
	nt.Eventually(t, 10*time.Second, "cut", func() bool {
		return a.Host().Network().Connectedness(b.ID()) == network.NotConnected &&
			b.Host().Network().Connectedness(a.ID()) == network.NotConnected
	})
}

func topicInfo(t *testing.T, n *node.Node, name string) topics.TopicInfo {
	t.Helper()
	for _, ti := range n.Topics().Topics() {
		if ti.Name == name {
			return ti
		}
	}
	t.Fatalf("%s has not joined %q", n.ID(), name)
	return topics.TopicInfo{}
}

// A follower cut off while the author publishes gets, once back, every
// message it missed from a member that kept them (here not the author,
// which it does not reach), in order, each once, none reported missing.
func TestBackfillAfterCut(t *testing.T) {
	a := nt.Peer(t, nil, nt.WithDirect(0)) // the author
	c := nt.Peer(t, nil, nt.WithDirect(0)) // between them
	b := nt.Peer(t, nil, nt.WithDirect(0)) // the follower cut off
	connect(t, a, c)
	connect(t, c, b)
	follow(t, c, "t", 0)
	sub := follow(t, b, "t", 0)
	if err := a.Topics().Join("t"); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, a, "t", c.ID())
	waitMesh(t, c, "t", b.ID())
	publish(t, a, "t", "1")
	if m := recv(t, sub); m.Seq != 1 {
		t.Fatalf("first message: seq %d", m.Seq)
	}

	cut(t, c, b)
	const during = 40
	for i := 2; i <= during+1; i++ {
		publish(t, a, "t", fmt.Sprint(i))
	}
	nt.Eventually(t, 20*time.Second, "c has every message", func() bool {
		return topicInfo(t, c, "t").Delivered == during+1
	})
	if b.Host().Network().Connectedness(c.ID()) != network.NotConnected {
		t.Fatal("b reconnected during the cut")
	}
	connect(t, c, b)
	// A message published before c has b in its mesh again does not reach
	// b, and nothing says when it does, so a publishes until b gets one; b
	// fills the gap before it from c.
	first, last := publishUntilGot(t, a, sub, during+1, 2*time.Second)
	for i := 2; i <= last; i++ {
		m := first
		if i > 2 {
			m = recv(t, sub)
		}
		if m.Seq != uint64(i) || string(m.Data) != fmt.Sprint(i) || m.From != a.ID() || m.Missed != 0 {
			t.Fatalf("message %d: got seq %d %q from %s, missed %d", i, m.Seq, m.Data, m.From, m.Missed)
		}
	}
	select {
	case m := <-sub.C():
		t.Fatalf("an extra message: seq %d %q", m.Seq, m.Data)
	default:
	}
	if st := sub.Stats(); st.Missed != 0 || st.Delivered != uint64(last) || st.Dropped != 0 {
		t.Fatalf("stats %+v, want %d delivered, none missed or dropped", st, last)
	}
	if ti := topicInfo(t, b, "t"); ti.Backfilled == 0 || ti.Late != 0 {
		t.Fatalf("b's topic: %d backfilled, %d late; want some backfilled, none late", ti.Backfilled, ti.Late)
	}
	if bs := c.Topics().Backfill(); bs.Served == 0 {
		t.Fatalf("c served nothing: %+v", bs)
	}
}

// What is older than the peers' store is reported missing, counted on the
// next message, as without backfill.
func TestBackfillOlderThanStoreReportedMissing(t *testing.T) {
	short := withLimits(func(l *topics.Limits) { l.Backfill, l.Hold = time.Millisecond, 2*time.Second })
	a := nt.Peer(t, nil, nt.WithDirect(0), short)
	b := nt.Peer(t, nil, nt.WithDirect(0), short)
	connect(t, a, b)
	const during = 10
	sub := followThenCut(t, a, b, during)
	connect(t, a, b)
	// a publishes until b gets a message (see TestBackfillAfterCut): all
	// before it are missing.
	m, _ := publishUntilGot(t, a, sub, during+1, 4*time.Second)
	// (The first one b got may be one of the earlier attempts.)
	if m.Seq < during+2 || m.Missed != m.Seq-2 {
		t.Fatalf("got seq %d with %d missed, want all %d before it missed", m.Seq, m.Missed, m.Seq-2)
	}
	if bs := b.Topics().Backfill(); bs.Asked == 0 {
		t.Fatalf("b asked nobody: %+v", bs)
	}
	if ti := topicInfo(t, b, "t"); ti.Missed != m.Seq-2 || ti.Backfilled != 0 {
		t.Fatalf("b's topic: %d missed, %d backfilled; want %d, 0", ti.Missed, ti.Backfilled, m.Seq-2)
	}
}

// request builds a BackfillID request frame's payload.
func request(topic string, author peer.ID, session, first, last uint64) []byte {
	b := []byte{1}
	b = binary.BigEndian.AppendUint16(b, uint16(len(topic)))
	b = append(b, topic...)
	b = append(b, byte(len(author)))
	b = append(b, author...)
	b = binary.BigEndian.AppendUint64(b, session)
	b = binary.BigEndian.AppendUint64(b, first)
	return binary.BigEndian.AppendUint64(b, last)
}

// exchange sends raw on a new BackfillID stream from `from` to p and reads the
// reply to its end.
func exchange(t *testing.T, ctx context.Context, from host.Host, p peer.ID, raw []byte) ([]byte, error) {
	t.Helper()
	st, err := from.NewStream(ctx, p, topics.BackfillID)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := st.Write(raw); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	_ = st.CloseWrite()
	return io.ReadAll(st)
}

// A malformed or oversized request resets its stream, and only it: the
// same peer's next request is answered and the topic goes on.
func TestBackfillBadRequestResetsStream(t *testing.T) {
	a := nt.Peer(t, nil, nt.WithDirect(0))
	b := nt.Peer(t, nil, nt.WithDirect(0))
	connect(t, a, b)
	sub := follow(t, b, "t", 0)
	if err := a.Topics().Join("t"); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, a, "t", b.ID())
	res := publish(t, a, "t", "kept")
	recv(t, sub)
	ctx := nt.Context(t, 30*time.Second)
	frame := func(typ byte, payload []byte) []byte {
		b := []byte{typ, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
		return append(b, payload...)
	}
	oversized := []byte{1, 0xff, 0xff, 0xff, 0xff}
	for name, raw := range map[string][]byte{
		"oversized":   oversized,
		"bad version": frame(1, append([]byte{9}, request("t", a.ID(), 1, 1, 1)[1:]...)),
		"bad range":   frame(1, request("t", a.ID(), 1, 5, 4)),
		"wrong frame": frame(2, request("t", a.ID(), 1, 1, 1)),
		"truncated":   frame(1, request("t", a.ID(), 1, 1, 1)[:20]),
	} {
		if out, err := exchange(t, ctx, b.Host(), a.ID(), raw); err == nil {
			t.Fatalf("%s request: read %d bytes and no reset", name, len(out))
		}
	}
	if b.Host().Network().Connectedness(a.ID()) != network.Connected {
		t.Fatal("the connection went with the streams")
	}
	// A good request for a session a does not have gets an empty reply.
	out, err := exchange(t, ctx, b.Host(), a.ID(), frame(1, request("t", a.ID(), 1, 1, res.Seq)))
	if err != nil {
		t.Fatalf("good request after bad ones: %v", err)
	}
	if len(out) != 5 || out[0] != 3 {
		t.Fatalf("reply %x, want only the end frame", out)
	}
	publish(t, a, "t", "still")
	if m := recv(t, sub); string(m.Data) != "still" {
		t.Fatalf("got %q", m.Data)
	}
	if a.Topics().Backfill().Refused < 5 {
		t.Fatalf("refusals %+v, want 5", a.Topics().Backfill())
	}
}

// A peer that is no member (a stock libp2p host) gets no message: its
// stream is reset.
func TestBackfillNonMemberRefused(t *testing.T) {
	a := nt.Peer(t, nil, nt.WithDirect(0))
	b := nt.Peer(t, nil, nt.WithDirect(0))
	connect(t, a, b)
	sub := follow(t, b, "t", 0)
	if err := a.Topics().Join("t"); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, a, "t", b.ID())
	publish(t, a, "t", "members only")
	m := recv(t, sub)
	if a.Topics().Backfill().Held == 0 {
		t.Fatal("a keeps nothing to backfill")
	}
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ctx := nt.Context(t, 30*time.Second)
	if err := h.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.DirectAddrs()}); err != nil {
		t.Fatalf("stranger connects: %v", err)
	}
	// The stranger knows the author's session only through a member; any
	// session gets the same answer.
	raw := []byte{1, 0, 0, 0, 0}
	payload := request("t", a.ID(), 1, 1, m.Seq)
	binary.BigEndian.PutUint32(raw[1:], uint32(len(payload)))
	raw = append(raw, payload...)
	out, err := exchange(t, ctx, h, a.ID(), raw)
	if err == nil || len(out) != 0 {
		t.Fatalf("stranger read %d bytes, err %v; want a reset and nothing", len(out), err)
	}
	if a.Topics().Backfill().Refused == 0 && h.Network().Connectedness(a.ID()) == network.Connected {
		t.Fatal("stranger neither refused nor cut off")
	}
}

// A follower back from a cut after the author's last message gets what
// was published during it with nothing newer to show the gap: it asks each
// peer grafted into its mesh for what follows the last it got.
func TestBackfillTailAfterCut(t *testing.T) {
	a := nt.Peer(t, nil, nt.WithDirect(0))
	c := nt.Peer(t, nil, nt.WithDirect(0))
	b := nt.Peer(t, nil, nt.WithDirect(0))
	connect(t, a, c)
	connect(t, c, b)
	follow(t, c, "t", 0)
	sub := follow(t, b, "t", 0)
	if err := a.Topics().Join("t"); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, a, "t", c.ID())
	waitMesh(t, c, "t", b.ID())
	publish(t, a, "t", "1")
	recv(t, sub)
	cut(t, c, b)
	const during = 20
	for i := 2; i <= during+1; i++ {
		publish(t, a, "t", fmt.Sprint(i))
	}
	nt.Eventually(t, 20*time.Second, "c has every message", func() bool {
		return topicInfo(t, c, "t").Delivered == during+1
	})
	connect(t, c, b)
	for i := 2; i <= during+1; i++ {
		m := recv(t, sub)
		if m.Seq != uint64(i) || string(m.Data) != fmt.Sprint(i) || m.Missed != 0 {
			t.Fatalf("message %d: got seq %d %q, missed %d", i, m.Seq, m.Data, m.Missed)
		}
	}
	if ti := topicInfo(t, b, "t"); ti.Backfilled != during {
		t.Fatalf("b backfilled %d, want %d", ti.Backfilled, during)
	}
}

// A member asking far more often than the served rate gets refusals
// (reset streams), counted, and its connection stays.
func TestBackfillRequestsRateLimited(t *testing.T) {
	a := nt.Peer(t, nil, nt.WithDirect(0))
	b := nt.Peer(t, nil, nt.WithDirect(0))
	connect(t, a, b)
	ctx := nt.Context(t, 60*time.Second)
	payload := request("t", a.ID(), 1, 1, 10)
	raw := append([]byte{1, 0, 0, 0, byte(len(payload))}, payload...)
	const n = 40
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := exchange(t, ctx, b.Host(), a.ID(), raw)
			errs <- err
		}()
	}
	refused := 0
	for range n {
		if <-errs != nil {
			refused++
		}
	}
	// Every refusal resets a stream; a stream may also fail on its own.
	if c := a.Topics().Backfill().Refused; refused == 0 || c == 0 || c > uint64(refused) {
		t.Fatalf("%d of %d refused, a counted %d", refused, n, a.Topics().Backfill().Refused)
	}
	if b.Host().Network().Connectedness(a.ID()) != network.Connected {
		t.Fatal("the connection went with the refusals")
	}
}

// Backfill works over a limited relay circuit (the relay cuts circuits
// after an hour, so libp2p marks them limited, and takes no part in
// topics): the follower asks the author, reached only so.
func TestBackfillOverLimitedCircuit(t *testing.T) {
	r := nt.Relay(t, noTopics, nt.WithRelayConfig(func(c *relay.Config) { c.LimitDuration = time.Hour }))
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a, b := nt.Peer(t, relays), nt.Peer(t, relays)
	nt.Eventually(t, 10*time.Second, "both reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
	overCircuit := func() {
		// As in TestLimitedMemberReceives: identify over a limited circuit
		// sometimes stalls, so the connection is tried again.
		nt.Eventually(t, 60*time.Second, "a connects to b over the limited relay", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := a.Connect(ctx, b.ID().String())
			return err == nil
		})
		if a.Host().Network().Connectedness(b.ID()) != network.Limited {
			t.Fatalf("a reaches b %v, want limited only", a.Host().Network().Connectedness(b.ID()))
		}
	}
	overCircuit()
	const during = 10
	sub := followThenCut(t, a, b, during)
	overCircuit()
	first, last := publishUntilGot(t, a, sub, during+1, 2*time.Second)
	for i := 2; i <= last; i++ {
		m := first
		if i > 2 {
			m = recv(t, sub)
		}
		if m.Seq != uint64(i) || m.Missed != 0 {
			t.Fatalf("message %d: got seq %d, missed %d", i, m.Seq, m.Missed)
		}
	}
	if bs := a.Topics().Backfill(); bs.Served < during {
		t.Fatalf("a served %d messages, want at least %d", bs.Served, during)
	}
}

// publishUntilGot has a publish to topic "t" messages numbered from
// after+1 on, one per wait, until sub gets one (within 30 s); it returns
// that message and the number of the last one published.
func publishUntilGot(t *testing.T, a *node.Node, sub *topics.Sub, after int, wait time.Duration) (topics.Message, int) {
	t.Helper()
	last := after
	var got topics.Message
	nt.Eventually(t, 30*time.Second, "b gets a message after the cut", func() bool {
		last++
		publish(t, a, "t", fmt.Sprint(last))
		select {
		case got = <-sub.C():
			return true
		case <-time.After(wait):
			return false
		}
	})
	return got, last
}

// followThenCut has b follow topic "t" and get a's message 1, then cuts
// a and b apart and has a publish messages 2 to during+1 to nobody.
func followThenCut(t *testing.T, a, b *node.Node, during int) *topics.Sub {
	t.Helper()
	sub := follow(t, b, "t", 0)
	if err := a.Topics().Join("t"); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, a, "t", b.ID())
	publish(t, a, "t", "1")
	recv(t, sub)
	cut(t, a, b)
	for i := 2; i <= during+1; i++ {
		publish(t, a, "t", fmt.Sprint(i))
	}
	return sub
}
