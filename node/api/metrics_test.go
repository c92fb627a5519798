package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/book"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// scrape GETs /metrics from the API at addr and parses it as Prometheus text.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics as Prometheus text: %v", err)
	}
	return fams
}

// value sums the samples of a family whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	sum := 0.0
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func serveAddr(t *testing.T, n *node.Node) string {
	t.Helper()
	s, err := apiListen(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr()
}

// /metrics on the API listener: go-libp2p's collectors and the overlay's,
// counting a real handshake, reservation, message and a path moving from
// the relay to a direct connection; parsed as Prometheus text.
func TestMetricsScrape(t *testing.T) {
	r := nt.Relay(t, nt.WithMetrics())
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a := nt.Peer(t, relays, nt.WithMetrics(), nt.WithDirect(time.Minute))
	b := nt.Peer(t, relays, nt.WithMetrics(), nt.WithDirect(time.Minute))
	ra, aa, ba := serveAddr(t, r), serveAddr(t, a), serveAddr(t, b)
	nt.Eventually(t, 10*time.Second, "both peers reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
	ctx := nt.Context(t, 30*time.Second)
	if _, err := a.ConnectPeer(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.RelayedAddrs()}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Messages().Send(ctx, b.ID(), []byte("counted")); err != nil {
		t.Fatal(err)
	}
	nt.ConnectDirect(ctx, t, a, b)
	nt.Eventually(t, 10*time.Second, "a reaches b directly", func() bool {
		info, _ := a.Book().Get(b.ID())
		return info.Path == book.PathDirect
	})
	// A message to a peer nobody knows fails; a circuit to it through the
	// relay is refused for want of a reservation.
	nobody, err := peer.Decode("12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Messages().Send(ctx, nobody, []byte("nobody")); err == nil {
		t.Fatal("a message to a peer nobody knows was acknowledged")
	}
	circuit := nt.WSAddr(t, r).Encapsulate(ma.StringCast("/p2p-circuit"))
	if err := a.Host().Connect(ctx, peer.AddrInfo{ID: nobody, Addrs: []ma.Multiaddr{circuit}}); err == nil {
		t.Fatal("a circuit to an unreserved peer was opened")
	}

	fa := scrape(t, aa)
	for _, prefix := range []string{"libp2p_swarm_", "libp2p_identify_", "libp2p_rcmgr_", "libp2p_holepunch_", "libp2p_autonat_"} {
		if !hasPrefix(fa, prefix) {
			t.Errorf("a's /metrics lacks libp2p's %s*", prefix)
		}
	}
	checks := []struct {
		fams   map[string]*dto.MetricFamily
		name   string
		labels map[string]string
		min    float64
	}{
		{fa, "overlay_handshakes_total", map[string]string{"result": "member"}, 2}, // the relay and b
		{fa, "overlay_reservations_held", nil, 1},
		{fa, "overlay_relay_events_total", map[string]string{"state": "reserved"}, 1},
		{fa, "overlay_messages_sent_total", nil, 1},
		{fa, "overlay_message_rtt_seconds", nil, 1},
		{fa, "overlay_messages_failed_total", nil, 1},
		{fa, "overlay_path_changes_total", map[string]string{"from": "relayed", "to": "direct"}, 1},
		{fa, "overlay_peers", map[string]string{"state": "member", "path": "direct"}, 1},
	}
	for _, c := range checks {
		if v := value(c.fams, c.name, c.labels); v < c.min {
			t.Errorf("a: %s%v = %v, want >= %v", c.name, c.labels, v, c.min)
		}
	}
	nt.Eventually(t, 10*time.Second, "b counts the message received", func() bool {
		return value(scrape(t, ba), "overlay_messages_received_total", nil) >= 1
	})
	fr := scrape(t, ra)
	if v := value(fr, "overlay_relay_service_reservations", nil); v != 2 {
		t.Errorf("relay: overlay_relay_service_reservations = %v, want 2", v)
	}
	if !hasPrefix(fr, "libp2p_relaysvc_") {
		t.Error("relay's /metrics lacks libp2p's relay service metrics (libp2p_relaysvc_*)")
	}
	if v := value(fr, "overlay_relay_refusals_total", map[string]string{"limit": "circuit NO_RESERVATION"}); v < 1 {
		t.Errorf("relay: refusals of a circuit to an unreserved peer = %v, want >= 1", v)
	}
}

func hasPrefix(fams map[string]*dto.MetricFamily, prefix string) bool {
	for name := range fams {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}
