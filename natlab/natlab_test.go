package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseScenarios(t *testing.T) {
	names := func(spec string) []string {
		t.Helper()
		rows, err := parseScenarios(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		var out []string
		for _, r := range rows {
			out = append(out, r.name)
		}
		return out
	}
	if got := names("all"); len(got) != len(layouts)+len(faultRows()) || got[0] != "cone" || got[len(got)-1] != "fault:relay-restart@ws-only" {
		t.Errorf("all = %v", got)
	}
	rows, _ := parseScenarios("relay-restart@ws-only")
	if f := rows[0]; f.fault == nil || f.fault.name != "relay-restart" || !f.wsOnly || f.expect != mustRelayed {
		t.Errorf("relay-restart@ws-only = %+v", f)
	}
	if got := names("ws-only, wan-down,cone,ws-only"); !slices.Equal(got, []string{"ws-only", "fault:wan-down", "cone"}) {
		t.Errorf("list = %v", got)
	}
	rows, _ = parseScenarios("fault:conntrack-flush")
	if f := rows[0]; f.fault == nil || f.nat != [2]nat{cone, cone} || f.expect != mustDirect {
		t.Errorf("fault row = %+v, want the cone layout with a fault, expecting direct", f)
	}
	if _, err := parseScenarios("cone,nat-hell"); err == nil || !strings.Contains(err.Error(), "nat-hell") {
		t.Errorf("unknown name: err = %v", err)
	}
}

func inboxJSON(msgs ...string) []byte {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var parts []string
	for i, m := range msgs {
		from, data, _ := strings.Cut(m, ":")
		parts = append(parts, fmt.Sprintf(`{"from":%q,"seq":%d,"received_at":%q,"data":%q,"encoding":"utf-8"}`,
			from, i, t0.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), data))
	}
	return []byte("[" + strings.Join(parts, ",") + "]")
}

func TestInboxCount(t *testing.T) {
	var l inboxLog
	if err := l.add(inboxJSON("A:soak 1 at x", "C:soak 2 at x", "A:soak 2 at x", "A:hello", "A:soak 4 at x")); err != nil {
		t.Fatal(err)
	}
	// A second read overlapping the first: the same receptions count once.
	if err := l.add(inboxJSON("A:soak 1 at x", "C:soak 2 at x", "A:soak 2 at x", "A:hello", "A:soak 4 at x", "A:soak 3 at x", "A:soak 4 at x")); err != nil {
		t.Fatal(err)
	}
	d := l.count("A", 6)
	if d.delivered != 4 || d.dup != 1 || d.reordered != 1 || !slices.Equal(d.missing, []int{5, 6}) {
		t.Errorf("count = %+v, want 4 delivered, 1 dup (4), 1 reordered (3), missing 5 and 6", d)
	}
}

func TestRowProblems(t *testing.T) {
	r := &row{sc: layouts[0]}
	r.add(trialResult{sent: 10, acked: 10, inbox: delivery{delivered: 10}, direct: true, directAfter: time.Second, endPath: "direct"})
	r.add(trialResult{sent: 10, acked: 9, lost: 1, inbox: delivery{delivered: 8, missing: []int{9, 10}}, endPath: "relayed"})
	got := strings.Join(r.problems(true), "; ")
	for _, want := range []string{"1 message(s) never acknowledged", "1 acknowledged message(s) missing", "only 1 of 2 trials went direct"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %q lack %q", got, want)
		}
	}
	if p := r.problems(false); len(p) != 2 {
		t.Errorf("without -check: %v, want only the message problems", p)
	}
	ws := &row{sc: layouts[4]}
	ws.add(trialResult{sent: 1, acked: 1, inbox: delivery{delivered: 1}, direct: true, endPath: "direct"})
	if p := ws.problems(true); len(p) != 1 || !strings.Contains(p[0], "want relayed only") {
		t.Errorf("ws-only direct: %v", p)
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 20; i++ {
		s = append(s, time.Duration(i))
	}
	if p50, p90, p95 := percentile(s, 50), percentile(s, 90), percentile(s, 95); p50 != 10 || p90 != 18 || p95 != 19 {
		t.Errorf("p50 %d p90 %d p95 %d, want 10, 18 and 19", p50, p90, p95)
	}
	if p := percentile(s[:1], 95); p != 1 {
		t.Errorf("one sample: %d", p)
	}
}

func TestMatrixCells(t *testing.T) {
	cells, err := matrixCells("all")
	if err != nil {
		t.Fatal(err)
	}
	// 6 behaviours that pair with each other: 6*7/2 unordered pairs with the
	// diagonal; same-lan only with itself.
	if len(cells) != 22 {
		t.Errorf("%d cells, want 22", len(cells))
	}
	seen := map[string]bool{}
	for _, c := range cells {
		if seen[c.name] {
			t.Errorf("cell %s twice", c.name)
		}
		seen[c.name] = true
		if c.name != c.sides[0]+"/"+c.sides[1] {
			t.Errorf("cell %s has sides %v", c.name, c.sides)
		}
		if strings.Contains(c.name, "same-lan") && c.name != "same-lan/same-lan" {
			t.Errorf("cell %s pairs same-lan with another behaviour", c.name)
		}
	}
	for name := range directToday {
		if !seen[name] {
			t.Errorf("directToday names %s, which is no cell", name)
		}
	}
	if c := cells[0]; c.name != "drop/drop" || c.expect != mustDirect {
		t.Errorf("first cell %s expects %v, want drop/drop expecting direct", c.name, c.expect)
	}
	for _, want := range []string{"drop/drop", "drop/symmetric", "open/cgnat", "symmetric/symmetric", "udp-block/udp-block", "same-lan/same-lan"} {
		if !seen[want] {
			t.Errorf("no cell %s", want)
		}
	}
	// The list's order does not matter: A is the behaviour listed first
	// in behaviours.
	two, err := matrixCells("symmetric, reject,reject")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range two {
		names = append(names, c.name)
	}
	if !slices.Equal(names, []string{"reject/reject", "reject/symmetric", "symmetric/symmetric"}) {
		t.Errorf("reject,symmetric cells = %v", names)
	}
	if c := two[1]; c.nat != [2]nat{cone, symmetric} || c.filter != [2]filter{filterReject, filterDrop} {
		t.Errorf("reject/symmetric = %+v", c)
	}
	if _, err := matrixCells("drop,hard"); err == nil || !strings.Contains(err.Error(), "hard") {
		t.Errorf("unknown behaviour: err = %v", err)
	}
	rows, err := parseScenarios("cone,open/cgnat")
	if err != nil || len(rows) != 2 || rows[1].cgnat != [2]bool{false, true} || rows[1].filter[0] != filterOpen {
		t.Errorf("cone,open/cgnat = %+v, %v", rows, err)
	}
}

func TestScenarioNamespaces(t *testing.T) {
	cells, _ := matrixCells("cgnat,same-lan")
	got := map[string][]string{}
	for _, c := range cells {
		got[c.name] = c.namespaces()
		for _, ns := range c.namespaces() {
			if !slices.Contains(allNamespaces(), ns) {
				t.Errorf("%s: namespace %s is not one -clean removes", c.name, ns)
			}
		}
	}
	if ns := got["cgnat/cgnat"]; !slices.Equal(ns, []string{nsInet, nsRelay, "nl-cgnA", "nl-rtrA", "nl-peerA", "nl-cgnB", "nl-rtrB", "nl-peerB"}) {
		t.Errorf("cgnat/cgnat namespaces %v", ns)
	}
	if ns := got["same-lan/same-lan"]; !slices.Equal(ns, []string{nsInet, nsRelay, "nl-rtrA", "nl-peerA", "nl-peerB"}) {
		t.Errorf("same-lan namespaces %v", ns)
	}
	if s := cells[len(cells)-1].sites()[1]; s.rtr != "nl-rtrA" || s.lanGW != "10.10.1.1" || s.peerIP != "10.10.1.3" {
		t.Errorf("same-lan site B = %+v", s)
	}
}

func TestFilterRules(t *testing.T) {
	if r := filterRules(filterOpen); len(r) != 0 {
		t.Errorf("open: %v", r)
	}
	join := func(f filter) string {
		var s []string
		for _, r := range filterRules(f) {
			s = append(s, strings.Join(r, " "))
		}
		return strings.Join(s, "\n")
	}
	for _, chain := range []string{"FORWARD", "INPUT"} {
		if d := join(filterDrop); !strings.Contains(d, "-A "+chain+" -i wan -j DROP") {
			t.Errorf("drop lacks %s DROP:\n%s", chain, d)
		}
		if r := join(filterReject); !strings.Contains(r, "-A "+chain+" -i wan -p tcp -j REJECT --reject-with tcp-reset") {
			t.Errorf("reject lacks %s tcp-reset:\n%s", chain, r)
		}
	}
}
