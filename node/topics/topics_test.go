package topics_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/node/topics"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
)

func noTopics(c *node.Config) { c.DisableTopics = true }

func withLimits(fn func(*topics.Limits)) nt.Option {
	return func(c *node.Config) { fn(&c.Topics) }
}

func connect(t testing.TB, a, b *node.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	target := b.ID().String()
	if d := b.FullAddrs(); len(d) > 0 {
		target = d[0].String()
	}
	if _, err := a.Connect(ctx, target); err != nil {
		t.Fatalf("connect %s -> %s: %v", a.ID(), b.ID(), err)
	}
}

func follow(t testing.TB, n *node.Node, topic string, buffer int) *topics.Sub {
	t.Helper()
	s, err := n.Topics().Subscribe(context.Background(), topic, buffer)
	if err != nil {
		t.Fatalf("subscribe %q: %v", topic, err)
	}
	t.Cleanup(s.Close)
	return s
}

// waitPeers waits until n knows every one of want follows topic.
func waitPeers(t testing.TB, n *node.Node, topic string, want ...peer.ID) {
	t.Helper()
	waitIn(t, n, topic, func(ti topics.TopicInfo) []string { return ti.Peers }, want)
}

// waitMesh waits until every one of want is in n's mesh of topic.
func waitMesh(t testing.TB, n *node.Node, topic string, want ...peer.ID) {
	t.Helper()
	waitIn(t, n, topic, func(ti topics.TopicInfo) []string { return ti.Mesh }, want)
}

func waitIn(t testing.TB, n *node.Node, topic string, list func(topics.TopicInfo) []string, want []peer.ID) {
	t.Helper()
	nt.Eventually(t, 20*time.Second, fmt.Sprintf("%s has %d topic peers", n.ID(), len(want)), func() bool {
		for _, ti := range n.Topics().Topics() {
			if ti.Name != topic {
				continue
			}
			have := map[string]bool{}
			for _, p := range list(ti) {
				have[p] = true
			}
			for _, p := range want {
				if !have[p.String()] {
					return false
				}
			}
			return true
		}
		return false
	})
}

func recv(t *testing.T, s *topics.Sub) topics.Message {
	t.Helper()
	select {
	case m, ok := <-s.C():
		if !ok {
			t.Fatal("subscription closed")
		}
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("no message in 20 s")
	}
	return topics.Message{}
}

func publish(t *testing.T, n *node.Node, topic, text string) topics.PublishResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := n.Topics().Publish(ctx, topic, []byte(text))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return r
}

// Two members reached each other only over a limited relay circuit (the
// relay cuts circuits after an hour, so libp2p marks them limited) and the
// relay itself takes no part in topics: the message can only travel over
// the limited connection. This is the check behind limitedHost
// (go-libp2p-pubsub #712): it fails if an upgrade of pubsub stops using
// limited connections the way the wrapper expects.
func TestLimitedMemberReceives(t *testing.T) {
	r := nt.Relay(t, noTopics, nt.WithRelayConfig(func(c *relay.Config) { c.LimitDuration = time.Hour }))
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a, b := nt.Peer(t, relays), nt.Peer(t, relays)
	nt.Eventually(t, 10*time.Second, "both reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
	// A connection over a limited circuit sometimes stalls in identify
	// (seen with topics off too, about 1 in 6 under -race): the test is
	// about what follows, so it tries again.
	nt.Eventually(t, 60*time.Second, "a connects to b over the limited relay", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := a.Connect(ctx, b.ID().String())
		return err == nil
	})
	for _, c := range a.Host().Network().ConnsToPeer(b.ID()) {
		if !c.Stat().Limited {
			t.Fatalf("connection %s to b is not limited", c.RemoteMultiaddr())
		}
	}
	if a.Host().Network().Connectedness(b.ID()) != network.Limited {
		t.Fatalf("a reaches b %v, want limited only", a.Host().Network().Connectedness(b.ID()))
	}
	sub := follow(t, b, "fleet", 0)
	if err := a.Topics().Join("fleet"); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, a, "fleet", b.ID())
	res := publish(t, a, "fleet", "over a limited circuit")
	m := recv(t, sub)
	if string(m.Data) != "over a limited circuit" || m.From != a.ID() || m.Seq != res.Seq {
		t.Fatalf("got %+v, want a's message seq %d", m, res.Seq)
	}
}

// Messages go through a relay that routes the topic to members that reach
// only it, in order per publisher, each once.
func TestRelayRoutesInOrder(t *testing.T) {
	r := nt.Relay(t)
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a, b := nt.Peer(t, relays), nt.Peer(t, relays)
	subA, subB := follow(t, a, "chat", 0), follow(t, b, "chat", 0)
	waitMesh(t, r, "chat", a.ID(), b.ID())
	waitMesh(t, a, "chat", r.ID())
	waitMesh(t, b, "chat", r.ID())
	const n = 50
	for i := 1; i <= n; i++ {
		publish(t, a, "chat", fmt.Sprint(i))
	}
	for _, s := range []*topics.Sub{subA, subB} {
		for i := 1; i <= n; i++ {
			m := recv(t, s)
			if m.Seq != uint64(i) || string(m.Data) != fmt.Sprint(i) || m.From != a.ID() {
				t.Fatalf("message %d: got seq %d %q from %s", i, m.Seq, m.Data, m.From)
			}
		}
		if st := s.Stats(); st.Missed != 0 || st.Dropped != 0 {
			t.Fatalf("stats %+v, want nothing missed or dropped", st)
		}
	}
}

// A stranger's host (stock libp2p, no overlay handshake) and a node of
// another network run gossipsub next to a member: neither gets into the
// topic's peers, what they publish is not delivered, and they receive
// nothing the members publish.
func TestNonMemberCannotJoinOrPublish(t *testing.T) {
	stock := func(t *testing.T) host.Host {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	other := func(t *testing.T) host.Host {
		return nt.Peer(t, nil, nt.WithNetwork("elsewhere"), noTopics, nt.WithDirect(0)).Host()
	}
	for name, mk := range map[string]func(*testing.T) host.Host{"stock libp2p": stock, "other network": other} {
		t.Run(name, func(t *testing.T) {
			m1 := nt.Peer(t, nil, nt.WithDirect(0))
			m2 := nt.Peer(t, nil, nt.WithDirect(0))
			connect(t, m1, m2)
			sub1 := follow(t, m1, "t", 0)
			follow(t, m2, "t", 0)
			waitPeers(t, m2, "t", m1.ID())

			h := mk(t)
			ps, err := pubsub.NewGossipSub(context.Background(), h)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := ps.Join("t")
			if err != nil {
				t.Fatal(err)
			}
			strangerSub, err := pt.Subscribe()
			if err != nil {
				t.Fatal(err)
			}
			if err := h.Connect(context.Background(), peer.AddrInfo{ID: m1.ID(), Addrs: m1.DirectAddrs()}); err != nil {
				t.Fatalf("stranger connects: %v", err)
			}
			// It publishes until m1 refuses a message or drops it.
			nt.Eventually(t, 20*time.Second, "stranger refused or cut off", func() bool {
				_ = pt.Publish(context.Background(), topics.Encode(1, 1, []byte("spam")))
				return m1.Topics().Stats()[topics.ReasonForwarder] > 0 ||
					h.Network().Connectedness(m1.ID()) == network.NotConnected
			})
			waitMesh(t, m2, "t", m1.ID())
			publish(t, m2, "t", "members only")
			if m := recv(t, sub1); string(m.Data) != "members only" {
				t.Fatalf("m1 got %q from %s, want the member's message", m.Data, m.From)
			}
			for _, ti := range m1.Topics().Topics() {
				for _, p := range ti.Peers {
					if p == h.ID().String() {
						t.Fatalf("stranger %s among m1's topic peers", p)
					}
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			for {
				m, err := strangerSub.Next(ctx)
				if err != nil {
					break
				}
				if m.GetFrom() != h.ID() {
					t.Fatalf("stranger received %q from %s", m.Data, m.GetFrom())
				}
			}
		})
	}
}

// Publishing above the cap fails before anything is sent.
func TestPublishSizeCap(t *testing.T) {
	n := nt.Peer(t, nil)
	_, err := n.Topics().Publish(context.Background(), "t", make([]byte, topics.MaxData+1))
	if !errors.Is(err, protocol.ErrTooLarge) {
		t.Fatalf("publish %d bytes: %v, want ErrTooLarge", topics.MaxData+1, err)
	}
}

// Once two members reach each other directly, gossipsub's streams leave
// the relayed connection, which then closes as idle, and messages go on.
func TestTopicsMoveOffRelay(t *testing.T) {
	r := nt.Relay(t, noTopics)
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a := nt.Peer(t, relays, nt.WithDirect(300*time.Millisecond))
	b := nt.Peer(t, relays, nt.WithDirect(300*time.Millisecond))
	nt.Eventually(t, 10*time.Second, "both reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.ConnectPeer(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.RelayedAddrs()}); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	sub := follow(t, b, "t", 0)
	if err := a.Topics().Join("t"); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, a, "t", b.ID())
	publish(t, a, "t", "relayed")
	if m := recv(t, sub); string(m.Data) != "relayed" {
		t.Fatalf("got %q", m.Data)
	}
	direct := network.WithForceDirectDial(ctx, "test: as a hole punch would")
	if err := a.Host().Connect(direct, peer.AddrInfo{ID: b.ID(), Addrs: b.DirectAddrs()}); err != nil {
		t.Fatal(err)
	}
	nt.Eventually(t, 20*time.Second, "relayed connection closed", func() bool {
		for _, c := range a.Host().Network().ConnsToPeer(b.ID()) {
			if _, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT); err == nil {
				return false
			}
		}
		return true
	})
	waitPeers(t, a, "t", b.ID())
	nt.Eventually(t, 20*time.Second, "a message over the direct connection", func() bool {
		publish(t, a, "t", "direct")
		select {
		case m := <-sub.C():
			return string(m.Data) == "direct"
		case <-time.After(time.Second):
			return false
		}
	})
}
