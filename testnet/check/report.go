// The summary table and, on failure, the nodes' logs.

package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

func (c *checker) report() {
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tPAIR\tPATH\tRTT\tRESULT")
	failed := 0
	// Rows of one check come from goroutines: order them by pair.
	slices.SortStableFunc(c.rows, func(a, b row) int {
		if d := a.group - b.group; d != 0 {
			return d
		}
		return strings.Compare(a.pair, b.pair)
	})
	for _, r := range c.rows {
		if !r.ok {
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.step, r.pair, r.path, r.rtt, r.result)
	}
	tw.Flush()
	fmt.Println("\nPATH: how the first node reaches the second, from its peer book. RTT: one ping to the")
	fmt.Println("relay (reservation rows); send to acknowledgement (message rows); ping's average over")
	fmt.Println("the overlay interface (interface rows).")
	fmt.Println()
	for _, n := range c.notes {
		fmt.Println(n)
	}
	if failed > 0 || len(c.rows) == 0 {
		fmt.Printf("FAIL: %d of %d checks failed\n", failed, len(c.rows))
		return
	}
	fmt.Printf("PASS: %d checks\n", len(c.rows))
}

// dumpLogs prints the end of every node's log, for a failed run.
func (c *checker) dumpLogs() {
	out, err := c.composeRun(60*time.Second, "logs", "--no-color", "--tail", "40")
	if err != nil {
		fmt.Fprintf(os.Stderr, "logs: %v\n", err)
	}
	fmt.Fprintf(os.Stderr, "\n--- last log lines of each node ---\n%s", out)
}
