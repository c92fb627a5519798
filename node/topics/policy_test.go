package topics_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/node/topics"
)

// The access policy's topic rules (cert.Rule Publish and Follow), held in
// the trust store, decide who publishes and follows: a node refuses a
// message whose author may not publish there, leaves a member that may not
// follow a topic out of it, and refuses its own publish where it may not.
func TestPolicyDecidesTopics(t *testing.T) {
	pub, priv, err := cert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	withCA := func(c *node.Config) { c.CAPub = pub }
	a := nt.Peer(t, nil, nt.WithDirect(0), withCA)
	b := nt.Peer(t, nil, nt.WithDirect(0), withCA)
	plain := nt.Peer(t, nil, nt.WithDirect(0)) // holds no policy: publishes anything
	connect(t, a, b)
	connect(t, plain, b)
	p := &cert.Policy{Version: 1, Default: cert.Allow, Rules: []cert.Rule{
		{Name: "plain-reads-only", Action: cert.Deny, From: []string{"peer:" + plain.ID().String()}, To: []string{"*"}, Publish: []string{"t"}},
		{Name: "a-not-on-ro", Action: cert.Deny, From: []string{"peer:" + a.ID().String()}, To: []string{"*"}, Publish: []string{"ro"}},
		{Name: "b-not-in-secret", Action: cert.Deny, From: []string{"peer:" + b.ID().String()}, To: []string{"*"}, Follow: []string{"secret"}},
	}}
	doc, err := p.Sign(priv, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Trust().Offer(cert.KindPolicy, doc); err != nil {
		t.Fatal(err)
	}
	nt.Eventually(t, 20*time.Second, "a holds the policy", func() bool {
		_, v := a.Trust().Versions()
		return v == 1
	})

	sub := follow(t, b, "t", 0)
	follow(t, b, "secret", 0)
	for _, n := range []*node.Node{a, plain} {
		if err := n.Topics().Join("t"); err != nil {
			t.Fatal(err)
		}
		waitPeers(t, n, "t", b.ID())
	}
	publish(t, plain, "t", "from plain")
	nt.Eventually(t, 20*time.Second, "b refuses plain's message by policy", func() bool {
		return b.Topics().Stats()[topics.ReasonPolicy] > 0
	})
	publish(t, a, "t", "from a")
	if m := recv(t, sub); m.From != a.ID() || string(m.Data) != "from a" {
		t.Fatalf("b got %q from %s, want a's message (plain's refused)", m.Data, m.From)
	}

	// a knows b follows "t" (the same announcement carried "secret"), yet
	// leaves b out of "secret".
	if err := a.Topics().Join("secret"); err != nil {
		t.Fatal(err)
	}
	for _, ti := range a.Topics().Topics() {
		if ti.Name == "secret" && slices.Contains(ti.Peers, b.ID().String()) {
			t.Fatalf("a counts b among the followers of secret: %+v", ti)
		}
	}
	if res := publish(t, a, "secret", "x"); res.Peers != 0 {
		t.Fatalf("a's message to secret reached %d peers, want 0", res.Peers)
	}

	if _, err := a.Topics().Publish(context.Background(), "ro", []byte("x")); !errors.Is(err, topics.ErrNotAllowed) {
		t.Fatalf("a publishes to ro: %v, want ErrNotAllowed", err)
	}
}
