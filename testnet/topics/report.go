package main

import (
	"fmt"
	"time"
)

// report prints a row per follower and the totals, and says whether every
// check passed: each follower not cut off got every message once and in
// order; the cut-off one got none twice nor out of order, what it lacks
// is what its node reported missing, and it lacks nothing when the cut was
// shorter than the backfill window.
func report(fs []*follower, victim *follower, total int, runStart, relayStopped, partFrom, partTo time.Time) bool {
	ok := true
	var all []sample
	var last time.Time
	deliveries, lost, dups, disorder := 0, 0, 0, 0
	fmt.Printf("\n%-28s %8s %6s %5s %6s %8s %9s %9s\n", "follower", "received", "lost", "dups", "order", "reported", "p50", "p99")
	for _, f := range fs {
		f.mu.Lock()
		l := total - f.got
		note := ""
		if f == victim && !partFrom.IsZero() {
			note = " (cut off)"
			if l != f.missedRep {
				ok = false
				note += " FAIL: lost != reported missing"
			}
			// Peers keep what they relay for -member-backfill: a member
			// cut off for less gets it all once back.
			if l != 0 && partTo.Sub(partFrom) < *memberFill {
				ok = false
				note += fmt.Sprintf(" FAIL: lost messages of a cut shorter than the backfill (%s)", *memberFill)
			}
		} else {
			all = append(all, f.lat...)
			deliveries += f.got
			lost += l
			if l != 0 {
				ok = false
				note = " FAIL"
			}
		}
		dups += f.dups
		disorder += f.disorder
		if f.dups != 0 || f.disorder != 0 {
			ok = false
			note += " FAIL: duplicated or out of order"
		}
		if f.lastAt.After(last) {
			last = f.lastAt
		}
		fmt.Printf("%-28s %8d %6d %5d %6d %8d %9s %9s%s\n", f.n.Name, f.got, l, f.dups, f.disorder, f.missedRep,
			percentile(durations(f.lat, nil), 0.5).Round(time.Millisecond), percentile(durations(f.lat, nil), 0.99).Round(time.Millisecond), note)
		for _, e := range f.errs {
			fmt.Printf("    %s\n", e)
		}
		f.mu.Unlock()
	}
	span := last.Sub(runStart)
	counted := len(fs)
	if !partFrom.IsZero() {
		counted-- // the cut-off member is reported apart
	}
	fmt.Printf("\n%-44s %s\n", "figure", "value")
	row := func(k string, v any) { fmt.Printf("%-44s %v\n", k, v) }
	row("members (followers) / publishers", fmt.Sprintf("%d / %d", len(fs), *publishers))
	row("messages published", fmt.Sprintf("%d (%d x %d at %.0f/s each, %d-byte texts)", total, *publishers, *messages, *rate, *size))
	row("deliveries, followers not cut off", fmt.Sprintf("%d of %d: %d lost, %d duplicated, %d out of order",
		deliveries, total*counted, lost, dups, disorder))
	lat := func(k string, keep func(sample) bool) {
		d := durations(all, keep)
		row("latency publish -> follower "+k, fmt.Sprintf("p50 %s, p99 %s, max %s (%d deliveries)",
			percentile(d, 0.5).Round(time.Millisecond), percentile(d, 0.99).Round(time.Millisecond),
			percentile(d, 1).Round(time.Millisecond), len(d)))
	}
	lat("(all)", nil)
	if !relayStopped.IsZero() {
		lat("(before relay1 stops)", func(s sample) bool { return s.sent.Before(relayStopped) })
		lat("(relay1 stop to +15 s)", func(s sample) bool {
			return !s.sent.Before(relayStopped) && s.sent.Before(relayStopped.Add(15*time.Second))
		})
		lat("(after that)", func(s sample) bool { return !s.sent.Before(relayStopped.Add(15 * time.Second)) })
	}
	if span > 0 {
		row("throughput on the topic (first publish to last delivery)", fmt.Sprintf("%.1f messages/s", float64(total)/span.Seconds()))
	}
	if !relayStopped.IsZero() {
		row("relay1 stopped at", relayStopped.Sub(runStart).Round(time.Second))
	}
	if !partFrom.IsZero() {
		victim.mu.Lock()
		row("cut off "+victim.n.Name, fmt.Sprintf("%s to %s: received %d, lost %d, reported missing %d",
			partFrom.Sub(runStart).Round(time.Second), partTo.Sub(runStart).Round(time.Second),
			victim.got, total-victim.got, victim.missedRep))
		var first time.Time
		during := 0
		for _, x := range victim.lat {
			if x.recv.After(partTo) && (first.IsZero() || x.recv.Before(first)) {
				first = x.recv
			}
			if !x.sent.Before(partFrom) && x.sent.Before(partTo) {
				during++
			}
		}
		after := "none"
		if !first.IsZero() {
			after = first.Sub(partTo).Round(time.Millisecond).String() + " after reconnecting"
		}
		row("  its first delivery after the cut", after)
		row("  messages published during the cut it got", during)
		victim.mu.Unlock()
	}
	if ok {
		fmt.Println("\nPASS")
	} else {
		fmt.Println("\nFAIL")
	}
	return ok
}
