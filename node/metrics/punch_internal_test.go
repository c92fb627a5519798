package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/overlay-net/overlay/node/netcheck"
)

// Punches are counted by outcome and NAT class.
func TestPunchCounter(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	if err := reg.Register(m.punches); err != nil {
		t.Fatal(err)
	}
	m.Punch("failure", netcheck.ClassEndpointDependent)
	m.Punch("failure", netcheck.ClassEndpointDependent)
	m.Punch("success", netcheck.ClassEndpointIndependent)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "overlay_hole_punches_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			key := ""
			for _, l := range s.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + ","
			}
			got[key] = s.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"nat=endpoint-dependent,outcome=failure,":   2,
		"nat=endpoint-independent,outcome=success,": 1,
	}
	if len(got) != len(want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
