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
	if p50, p95 := percentile(s, 50), percentile(s, 95); p50 != 10 || p95 != 19 {
		t.Errorf("p50 %d p95 %d, want 10 and 19", p50, p95)
	}
	if p := percentile(s[:1], 95); p != 1 {
		t.Errorf("one sample: %d", p)
	}
}
