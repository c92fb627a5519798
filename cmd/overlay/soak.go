package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/overlay-net/overlay/node/api"
)

// soakReport is what a soak run prints at the end.
type soakReport struct {
	Peer     string        `json:"peer"`
	Duration time.Duration `json:"duration_ns"`
	Sent     int           `json:"sent"`
	Acked    int           `json:"acknowledged"`
	Lost     int           `json:"lost"`
	P50      time.Duration `json:"rtt_p50_ns"`
	P99      time.Duration `json:"rtt_p99_ns"`
	Max      time.Duration `json:"rtt_max_ns"`
	Start    api.Runtime   `json:"runtime_start"`
	End      api.Runtime   `json:"runtime_end"`
	Errors   []string      `json:"first_errors,omitempty"`
}

// runSoak sends a numbered message every interval for d and reports what
// arrived and what the node's resource use did meanwhile.
func runSoak(cf clientFlags, to string, d, interval time.Duration) error {
	c, _, cancel, err := cf.client()
	if err != nil {
		return err
	}
	cancel()
	rtCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	start, err := c.Runtime(rtCtx)
	cancel()
	if err != nil {
		return err
	}
	rep := soakReport{Peer: to, Start: start}
	var rtts []time.Duration
	t0 := time.Now()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	lastReport := t0
	for time.Since(t0) < d {
		rep.Sent++
		ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
		rtt, err := c.Send(ctx, to, fmt.Appendf(nil, "soak %d at %s", rep.Sent, time.Now().UTC().Format(time.RFC3339Nano)), cf.timeout)
		cancel()
		if err != nil {
			rep.Lost++
			if len(rep.Errors) < 10 {
				rep.Errors = append(rep.Errors, err.Error())
			}
		} else {
			rep.Acked++
			rtts = append(rtts, rtt)
		}
		if time.Since(lastReport) >= time.Minute {
			lastReport = time.Now()
			fmt.Fprintf(os.Stderr, "%s: sent %d, acknowledged %d, lost %d\n", time.Since(t0).Round(time.Second), rep.Sent, rep.Acked, rep.Lost)
		}
		<-tick.C
	}
	rep.Duration = time.Since(t0)
	rtCtx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	rep.End, err = c.Runtime(rtCtx)
	cancel()
	if err != nil {
		return err
	}
	st := summarize(rtts)
	rep.P50, rep.P99, rep.Max = st.p50, st.p99, st.max
	if cf.json {
		return printJSON(rep)
	}
	fmt.Printf("soak to %s for %s: sent %d, acknowledged %d, lost %d\n", to, rep.Duration.Round(time.Second), rep.Sent, rep.Acked, rep.Lost)
	fmt.Printf("rtt p50 %s, p99 %s, max %s\n", rep.P50.Round(time.Microsecond), rep.P99.Round(time.Microsecond), rep.Max.Round(time.Microsecond))
	fmt.Printf("node goroutines %d -> %d, heap in use %.1f MiB -> %.1f MiB\n", rep.Start.Goroutines, rep.End.Goroutines,
		float64(rep.Start.HeapInuse)/(1<<20), float64(rep.End.HeapInuse)/(1<<20))
	if rep.Lost > 0 {
		return fmt.Errorf("%d of %d messages lost; first errors: %v", rep.Lost, rep.Sent, rep.Errors)
	}
	return nil
}

type rttStats struct{ min, avg, p50, p99, max time.Duration }

func summarize(rtts []time.Duration) rttStats {
	if len(rtts) == 0 {
		return rttStats{}
	}
	s := slices.Clone(rtts)
	slices.Sort(s)
	var sum time.Duration
	for _, r := range s {
		sum += r
	}
	return rttStats{min: s[0], avg: sum / time.Duration(len(s)), p50: s[len(s)/2],
		p99: s[min(len(s)-1, len(s)*99/100)], max: s[len(s)-1]}
}
