package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/metrics"
	"github.com/overlay-net/overlay/relay"
)

// The gauges read the node's state at each scrape: an open relay reports
// its strangers' tier next to its members'.
func TestStateGauges(t *testing.T) {
	st := metrics.State{
		Peers:        func() []book.PeerInfo { return []book.PeerInfo{{State: book.StateMember, Path: book.PathDirect}} },
		Reservations: func() int { return 0 },
		Relay: func() (relay.Stats, bool) {
			return relay.Stats{Reservations: 2, StrangerReservations: 1, Circuits: 3, StrangerCircuits: 1,
				RelayedBytes: 300, StrangerRelayedBytes: 100, Refusals: map[string]int64{"max-circuits": 4}}, true
		},
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(metrics.StateCollector(st)); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	for name, want := range map[string]float64{
		"overlay_relay_service_reservations":                 2,
		"overlay_relay_service_circuits":                     3,
		"overlay_relay_service_relayed_bytes_total":          300,
		"overlay_relay_service_stranger_reservations":        1,
		"overlay_relay_service_stranger_circuits":            1,
		"overlay_relay_service_stranger_relayed_bytes_total": 100,
		"overlay_relay_refusals_total":                       4,
		"overlay_peers":                                      1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}
