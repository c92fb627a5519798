package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/overlay-net/overlay/node/api"
	"github.com/overlay-net/overlay/node/netcheck"
)

func runNetcheck(args []string) error {
	var cf clientFlags
	fs := newFlags("netcheck", "netcheck [--json] [--api ADDR]\n\n"+
		"Asks the running node to measure its NAT now, from the UDP socket its QUIC\n"+
		"transport listens on, against each of its relays: whether UDP gets through,\n"+
		"whether every relay sees the same public address (endpoint-independent\n"+
		"mapping, which hole punching needs), hairpinning, and each relay's round\n"+
		"trip. The node also runs it at start and every 5 minutes; status shows the\n"+
		"latest. A relay answers the probes and runs none itself.")
	cf.register(fs, true, 15*time.Second)
	if err := parse(fs, args); err != nil {
		return err
	}
	return fetch(&cf, func(ctx context.Context, c *api.Client) (netcheck.Report, error) {
		return c.NetCheck(ctx, cf.timeout)
	}, func(r netcheck.Report) error {
		printNetcheck(r)
		return nil
	})
}

// printNetcheck prints a report for people.
func printNetcheck(r netcheck.Report) {
	if r.Error != "" {
		fmt.Printf("netcheck: %s\n", r.Error)
		if r.Local == "" {
			return
		}
	}
	line := func(k, v string) { fmt.Printf("%-17s %s\n", k+":", v) }
	line("from", orDash(r.Local)+" (the QUIC socket)")
	line("UDP", yesNo(r.UDP))
	line("public address", orDash(r.Mapped))
	mapping := "unknown (fewer than two relay addresses answered)"
	if v := r.MappingVaries; v != nil && *v {
		mapping = "varies by destination (endpoint-dependent, \"symmetric\": hole punching fails; port spraying by an endpoint-independent peer can work)"
	} else if v != nil {
		mapping = "the same for every relay (endpoint-independent: hole punching can work)"
	}
	line("mapping", mapping)
	switch {
	case r.Hairpin != nil:
		line("hairpinning", yesNo(*r.Hairpin))
	case r.HairpinNote != "":
		line("hairpinning", "not tested: "+r.HairpinNote)
	}
	line("NAT class", r.Class())
	line("preferred relay", orDash(r.Preferred))
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  RELAY\tUDP ADDRESS\tRTT\tSEES US AT\tERROR")
	for _, rr := range r.Relays {
		rtt := "-"
		if rr.Mapped != "" {
			rtt = fmt.Sprintf("%.1f ms", rr.RTTMs)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", rr.Relay, orDash(rr.Addr), rtt, orDash(rr.Mapped), orDash(rr.Error))
	}
	tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
