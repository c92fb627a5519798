package main

import (
	"fmt"
	"io"
	"strings"
)

// printTable writes the suite's one table, in markdown, then what the
// attacker saw of each attack.
func printTable(w io.Writer, r *Result) {
	if len(r.Rows) == 0 { // the certificate round alone
		if r.Certs != nil {
			printCertTable(w, r.Certs)
		}
		return
	}
	fmt.Fprintf(w, "\nAbuse suite, %s, scale %g, %d members, hold %gs; goals: relay up, RSS < %d MiB, RTT p99 during <= 3x before, join <= 2 s, 0 lost\n\n",
		r.Started, r.Scale, r.Members, r.HoldS, r.RSSBoundMiB)
	fmt.Fprintln(w, "| attack | count | relay up | relay RSS peak | member RTT p50/p99 before | member RTT p50/p99 during | new member joins in (≤ join timeout) | messages lost (failed) | strangers refused | goals failed |")
	fmt.Fprintln(w, "|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
	for _, x := range r.Rows {
		up := "yes"
		if !x.RelayUp {
			up = "**NO**"
		}
		js := func(s float64) string {
			if s < 0 {
				return "**none**"
			}
			return fmt.Sprintf("%.2f s", s)
		}
		join := "TCP " + js(x.JoinTCPS) + ", WS " + js(x.JoinWSS)
		failed := "none"
		if len(x.Failed) > 0 {
			failed = "**" + strings.Join(x.Failed, ", ") + "**"
		}
		refused := fmt.Sprint(x.Refused)
		if x.Refused < 0 {
			refused = "?" // the control API did not say
		}
		fmt.Fprintf(w, "| %s | %d | %s | %.0f MiB | %.2f / %.2f ms | %.2f / %.2f ms | %s | %d (%d) | %s | %s |\n",
			x.Attack, x.Count, up, x.RSSPeakMiB, x.RTTBefore.P50, x.RTTBefore.P99, x.RTTDuring.P50, x.RTTDuring.P99,
			join, x.Lost, x.SendFailed, refused, failed)
	}
	fmt.Fprintln(w)
	for _, x := range r.Rows {
		fmt.Fprintf(w, "- %s (%s): %s; relay had %d peers connected", x.Attack, x.What, x.Detail, x.PeersDuring)
		if x.JoinError != "" {
			fmt.Fprintf(w, "; new member: %s", x.JoinError)
		}
		if x.HarnessError != "" {
			fmt.Fprintf(w, "; HARNESS: %s", x.HarnessError)
		}
		if x.RelayExit != "" {
			fmt.Fprintf(w, "; RELAY EXITED: %s", x.RelayExit)
		}
		fmt.Fprintln(w)
	}
	if r.Certs != nil {
		printCertTable(w, r.Certs)
	}
}

// printCertTable writes the certificate round's table, then what the
// attacker saw of each attack.
func printCertTable(w io.Writer, c *CertRound) {
	fmt.Fprintf(w, "\nCertificate-mode round: one relay and its members in certificate mode; relay up at the end: %v; member RTT p50/p99 before: %.2f / %.2f ms; %d messages sent, %d lost; goals: every attempt refused, counted by the relay, 0 lost\n\n",
		c.RelayUp, c.RTTBefore.P50, c.RTTBefore.P99, c.Sent, c.Lost)
	if c.Error != "" {
		fmt.Fprintf(w, "HARNESS: %s\n\n", c.Error)
	}
	fmt.Fprintln(w, "| attack | count | refused | counted by the relay | member RTT p50/p99 during | messages lost (failed) | relay health, slowest | goals failed |")
	fmt.Fprintln(w, "|---|---:|---|---|---:|---:|---:|---|")
	for _, x := range c.Rows {
		refused := fmt.Sprintf("yes (%d of %d)", x.Refused, x.Attempts)
		if !x.AllRefused {
			refused = fmt.Sprintf("**NO** (%d of %d)", x.Refused, x.Attempts)
		}
		failed := "none"
		if len(x.Goals) > 0 {
			failed = "**" + strings.Join(x.Goals, ", ") + "**"
		}
		health := fmt.Sprintf("%.1f ms", x.HealthMS)
		if x.HealthMS < 0 {
			health = "**no answer**"
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %.2f / %.2f ms | %d (%d) | %s | %s |\n",
			x.Attack, x.Count, refused, x.Counted, x.RTTDuring.P50, x.RTTDuring.P99, x.Lost, x.Failed, health, failed)
	}
	fmt.Fprintln(w)
	for _, x := range c.Rows {
		fmt.Fprintf(w, "- %s (%s): %s\n", x.Attack, x.What, x.Detail)
	}
	fmt.Fprintf(w, "- relay log over the round: %d warnings, %d errors", c.LogWarn, c.LogError)
	for _, t := range c.LogTop {
		fmt.Fprintf(w, "; %dx %s", t.Count, t.What)
	}
	fmt.Fprintln(w)
}
