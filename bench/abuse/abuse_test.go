package main

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/overlay-net/overlay/bench/capacity/relayproc"
)

// The refused count sums every refusals map in a status, wherever a relay
// puts it, and nothing else.
func TestSumRefusals(t *testing.T) {
	var v any
	status := `{"peers_connected":7,"relay_service":{"reservations":3,"refusals":{"not a member":5,"rate":2}},
		"limits":{"max":1024},"admission":[{"refusals":{"tier":4}}]}`
	if err := json.Unmarshal([]byte(status), &v); err != nil {
		t.Fatal(err)
	}
	if got := sumRefusals(v); got != 11 {
		t.Errorf("sumRefusals = %d, want 11", got)
	}
	if got := peersConnected(v); got != 7 {
		t.Errorf("peersConnected = %d, want 7", got)
	}
}

// Each goal fails on its own measurement.
func TestCheckGoals(t *testing.T) {
	ok := func() *Row {
		return &Row{Attack: "x", RelayUp: true, RSSPeakMiB: 100, JoinS: 0.5,
			RTTBefore: relayproc.Pcts{N: 10, P99: 2}, RTTDuring: relayproc.Pcts{N: 10, P99: 6}}
	}
	f := flags{rssBoundMiB: 256}
	r := ok()
	r.check(f)
	if len(r.Failed) != 0 {
		t.Fatalf("a row meeting every goal failed %v", r.Failed)
	}
	for goal, spoil := range map[string]func(*Row){
		"relay up":                     func(r *Row) { r.RelayUp = false },
		"RSS < 256 MiB":                func(r *Row) { r.RSSPeakMiB = 300 },
		"RTT p99 <= 3x":                func(r *Row) { r.RTTDuring.P99 = 6.1 },
		"join <= 2 s":                  func(r *Row) { r.JoinS = -1 },
		"0 lost":                       func(r *Row) { r.Lost = 1 },
		"foreign API requests refused": func(r *Row) { r.Attack, r.APIAccepted = "control-api", 1 },
	} {
		r := ok()
		spoil(r)
		r.check(f)
		if !slices.Equal(r.Failed, []string{goal}) {
			t.Errorf("spoiling %q failed %v", goal, r.Failed)
		}
	}
}

func TestHostPort(t *testing.T) {
	for in, want := range map[string]string{
		"/ip4/127.0.0.1/tcp/4100/p2p/12D3KooWEWBzLgFB7SrtFY18TQXjNELSgXEqXWQsmRTt22SeEEzN": "127.0.0.1:4100",
		"/ip4/127.0.0.1/udp/4100/quic-v1":                                                  "127.0.0.1:4100",
		"/ip4/127.0.0.1/tcp/4101/ws":                                                       "127.0.0.1:4101",
		"garbage":                                                                          "",
	} {
		if got := hostPort(in); got != want {
			t.Errorf("hostPort(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPick(t *testing.T) {
	as, err := pick("garbage, slow-loris")
	if err != nil || len(as) != 2 || as[0].name != "garbage" || as[1].name != "slow-loris" {
		t.Fatalf("pick = %v, %v", as, err)
	}
	if _, err := pick("nope"); err == nil {
		t.Fatal("pick of an unknown attack did not fail")
	}
}
