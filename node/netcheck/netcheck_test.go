package netcheck_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/netcheck"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// quicAddr is n's QUIC address on loopback, with /p2p/.
func quicAddr(t *testing.T, n *node.Node) ma.Multiaddr {
	t.Helper()
	for _, a := range n.FullAddrs() {
		if strings.Contains(a.String(), "/quic-v1/") {
			return a
		}
	}
	t.Fatalf("%s has no QUIC address: %v", n.ID(), n.FullAddrs())
	return nil
}

func quicRelay(t *testing.T) *node.Node {
	return nt.Relay(t, nt.WithListen("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"))
}

// A private peer measures its NAT against two real relays on loopback: UDP
// gets through, both relays see the very port of the peer's QUIC listener
// (so the mapping is endpoint-independent), each has an RTT, and the
// preferred relay is the faster one. Status shows the report.
func TestNetcheckTwoRelays(t *testing.T) {
	r1, r2 := quicRelay(t), quicRelay(t)
	p := nt.Peer(t, []ma.Multiaddr{quicAddr(t, r1), quicAddr(t, r2)},
		nt.WithListen("/ip4/127.0.0.1/udp/0/quic-v1"), func(c *node.Config) { c.WebSocketOnly = false })
	var port int
	for _, a := range p.Host().Network().ListenAddresses() {
		if s, err := a.ValueForProtocol(ma.P_UDP); err == nil {
			port, _ = strconv.Atoi(s)
		}
	}
	if port == 0 {
		t.Fatalf("peer has no UDP listen address: %v", p.Host().Network().ListenAddresses())
	}

	r := p.NetCheck(nt.Context(t, 10*time.Second))
	if r.Error != "" || !r.UDP {
		t.Fatalf("report: udp %v, error %q; relays %+v", r.UDP, r.Error, r.Relays)
	}
	if len(r.Relays) != 2 {
		t.Fatalf("%d relays in the report, want 2: %+v", len(r.Relays), r.Relays)
	}
	for _, rr := range r.Relays {
		if rr.Error != "" || rr.RTTMs <= 0 {
			t.Errorf("relay %s: rtt %v ms, error %q", rr.Relay, rr.RTTMs, rr.Error)
		}
		_, ps, err := net.SplitHostPort(rr.Mapped)
		if err != nil || ps != strconv.Itoa(port) {
			t.Errorf("relay %s saw %q, want the QUIC listener's port %d", rr.Relay, rr.Mapped, port)
		}
	}
	if r.MappingVaries == nil || *r.MappingVaries {
		t.Errorf("mapping_varies_by_dest = %v, want false", r.MappingVaries)
	}
	if c := r.Class(); c != netcheck.ClassEndpointIndependent {
		t.Errorf("class %q, want %q", c, netcheck.ClassEndpointIndependent)
	}
	fastest := r.Relays[0]
	if r.Relays[1].RTTMs < fastest.RTTMs {
		fastest = r.Relays[1]
	}
	if r.Preferred != fastest.Relay {
		t.Errorf("preferred %q, want the fastest %q (%+v)", r.Preferred, fastest.Relay, r.Relays)
	}
	if r.BehindNAT == nil || *r.BehindNAT || r.Hairpin != nil {
		t.Errorf("on loopback: behind_nat %v hairpin %v, want false and untested", r.BehindNAT, r.Hairpin)
	}
	if s := p.Status(); s.NetCheck == nil || s.NetCheck.At != r.At {
		t.Errorf("status netcheck = %+v, want the last report", s.NetCheck)
	}
}

// A --ws-only node has no UDP socket: the report says so and nothing is probed.
func TestNetcheckWSOnly(t *testing.T) {
	r1 := nt.Relay(t)
	p := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r1)})
	rep := p.NetCheck(context.Background())
	if !strings.Contains(rep.Error, "--ws-only") || rep.Class() != netcheck.ClassNoUDP {
		t.Fatalf("ws-only report: error %q class %q", rep.Error, rep.Class())
	}
}
