package main

import (
	"slices"
	"testing"
)

// The round names the counters that grew, and only those.
func TestCounterDelta(t *testing.T) {
	before := map[string]int64{"certificate: cert-expired by self in handshake": 3, "trust: rollback": 1}
	after := map[string]int64{"certificate: cert-expired by self in handshake": 5, "trust: rollback": 1, "trust: rate-limited": 4}
	got, n := counterDelta(before, after)
	if want := "certificate: cert-expired by self in handshake +2, trust: rate-limited +4"; got != want || n != 6 {
		t.Errorf("counterDelta = %q, %d; want %q, 6", got, n, want)
	}
	if got, n := counterDelta(after, after); got != "none" || n != 0 {
		t.Errorf("counterDelta of no change = %q, %d", got, n)
	}
}

// An attack admitted, not counted, or costing a message fails its row.
func TestCertRowGoals(t *testing.T) {
	ok := func() *CertRow { return &CertRow{Attempts: 5, Refused: 5, AllRefused: true, CountedN: 5} }
	r := ok()
	r.check()
	if len(r.Goals) != 0 {
		t.Fatalf("a row meeting every goal failed %v", r.Goals)
	}
	for goal, spoil := range map[string]func(*CertRow){
		"all refused": func(r *CertRow) { r.Refused, r.AllRefused = 4, false },
		"counted":     func(r *CertRow) { r.CountedN = 0 },
		"0 lost":      func(r *CertRow) { r.Lost = 1 },
	} {
		r := ok()
		spoil(r)
		r.check()
		if !slices.Equal(r.Goals, []string{goal}) {
			t.Errorf("spoiling %q failed %v", goal, r.Goals)
		}
	}
}

// -only selects the certificate round by name, alone or with attacks;
// without -only everything runs.
func TestPickRounds(t *testing.T) {
	as, certs, err := pickRounds("")
	if err != nil || len(as) != len(suite) || !certs {
		t.Fatalf("pickRounds(\"\") = %d attacks, %v, %v", len(as), certs, err)
	}
	as, certs, err = pickRounds(certRoundName)
	if err != nil || len(as) != 0 || !certs {
		t.Fatalf("pickRounds(certs) = %d attacks, %v, %v", len(as), certs, err)
	}
	as, certs, err = pickRounds("garbage," + certRoundName)
	if err != nil || len(as) != 1 || as[0].name != "garbage" || !certs {
		t.Fatalf("pickRounds(garbage,certs) = %v, %v, %v", as, certs, err)
	}
	if _, certs, _ := pickRounds("garbage"); certs {
		t.Fatal("pickRounds(garbage) runs the certificate round")
	}
	if _, _, err := pickRounds("nope"); err == nil {
		t.Fatal("an unknown attack did not fail")
	}
}
