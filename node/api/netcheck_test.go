package api_test

import (
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/api"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/netcheck"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/node/path"
)

func quicAddrOf(t *testing.T, n *node.Node) ma.Multiaddr {
	t.Helper()
	for _, a := range n.FullAddrs() {
		if strings.Contains(a.String(), "/quic-v1/") {
			return a
		}
	}
	t.Fatalf("no QUIC address among %v", n.FullAddrs())
	return nil
}

// POST /v1/netcheck runs netcheck against the peer's two relays; status
// then carries the report, and /metrics the NAT class and each relay's RTT.
func TestNetcheckAPI(t *testing.T) {
	quic := nt.WithListen("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1")
	r1, r2 := nt.Relay(t, quic), nt.Relay(t, quic)
	p := nt.Peer(t, []ma.Multiaddr{quicAddrOf(t, r1), quicAddrOf(t, r2)}, nt.WithMetrics(),
		nt.WithListen("/ip4/127.0.0.1/udp/0/quic-v1"), func(c *node.Config) { c.WebSocketOnly = false })
	addr := serveAddr(t, p)
	c := api.NewClient(addr)
	ctx := nt.Context(t, 20*time.Second)
	r, err := c.NetCheck(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !r.UDP || len(r.Relays) != 2 || r.Class() != netcheck.ClassEndpointIndependent || r.Preferred == "" {
		t.Fatalf("report %+v", r)
	}
	s, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.NetCheck == nil || s.NetCheck.Mapped != r.Mapped {
		t.Errorf("status netcheck %+v, want mapped %s", s.NetCheck, r.Mapped)
	}
	fams := scrape(t, addr)
	if v := value(fams, "overlay_nat_class", map[string]string{"class": netcheck.ClassEndpointIndependent}); v != 1 {
		t.Errorf("overlay_nat_class{class=endpoint-independent} = %v, want 1", v)
	}
	for _, rr := range r.Relays {
		if v := value(fams, "overlay_netcheck_relay_rtt_seconds", map[string]string{"relay": rr.Relay}); v <= 0 {
			t.Errorf("overlay_netcheck_relay_rtt_seconds{relay=%s} = %v", rr.Relay, v)
		}
	}
}

// /v1/peers says why a member is relayed: here both peers run --ws-only.
func TestPeersWhyRelayed(t *testing.T) {
	r := nt.Relay(t)
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a, b := nt.Peer(t, relays), nt.Peer(t, relays)
	nt.Eventually(t, 10*time.Second, "both peers reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
	ctx := nt.Context(t, 20*time.Second)
	if _, err := a.Connect(ctx, b.ID().String()); err != nil {
		t.Fatal(err)
	}
	c := api.NewClient(serveAddr(t, a))
	var got *api.Peer
	nt.Eventually(t, 10*time.Second, "b booked as a relayed member", func() bool {
		ps, err := c.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.ID == b.ID() && p.State == book.StateMember && p.Path == book.PathRelayed {
				got = &p
				return true
			}
		}
		return false
	})
	if got.Why == nil || got.Why.Reason != path.WhyWSOnly || !strings.Contains(got.Why.Detail, "--ws-only") {
		t.Fatalf("why b is relayed: %+v", got.Why)
	}
	ps, _ := c.Peers(ctx)
	for _, p := range ps {
		if p.ID == r.ID() && p.Why != nil {
			t.Errorf("the relay, reached directly, has a why: %+v", p.Why)
		}
	}
}
