package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"
)

// Sizes of -measure: 20 pings, 100 ms apart; 64 MiB each way with perf.
const (
	measurePings     = 20
	measurePingEvery = 100 * time.Millisecond
	measureBytes     = 64 << 20
)

type pingJSON struct {
	RTTs  []time.Duration `json:"rtts_ns"`
	Error string          `json:"error,omitempty"`
}

type perfJSON struct {
	Upload       uint64        `json:"upload_bytes"`
	Download     uint64        `json:"download_bytes"`
	UploadTime   time.Duration `json:"upload_ns"`
	DownloadTime time.Duration `json:"download_ns"`
}

// measurement is ping and perf from A to B over one path.
type measurement struct {
	name      string
	path      string // B's path in A's book after the runs
	via       string // transports of the direct flows through router A
	rtts      []time.Duration
	perf      perfJSON
	err       error
	waitedFor time.Duration // until the path was as wanted
}

// runMeasure is -measure: relayed (ws-only peers, so nothing can go
// direct), direct (cone layout, once hole punching made a direct path, over
// whichever transport won) and direct over TCP (udp-drop layout), each in a
// lab of its own.
func runMeasure(ctx context.Context, o options, dir string) int {
	cases := []struct {
		name string
		sc   scenario
		want string
	}{
		{"relayed (ws-only peers)", layouts[4], "relayed"},
		{"direct (cone, after hole punch)", layouts[0], "direct"},
		{"direct (udp-drop: TCP punch)", layouts[3], "direct"},
	}
	var res []measurement
	for i, c := range cases {
		if ctx.Err() != nil {
			break
		}
		m := measureOne(ctx, o, c.sc, c.want, filepath.Join(dir, fmt.Sprintf("measure-%d", i)))
		m.name = c.name
		if m.err != nil {
			fmt.Fprintf(os.Stderr, "natlab: measure %s: %v\n", c.name, m.err)
		}
		res = append(res, m)
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "PATH\tPING RTT MIN\tP50\tAVG\tMAX (%d pings)\tUPLOAD %d MiB\tDOWNLOAD %d MiB\tPATH AFTER\tDIRECT FLOWS\n",
		measurePings, measureBytes>>20, measureBytes>>20)
	failed := ctx.Err() != nil
	for _, m := range res {
		if m.err != nil {
			failed = true
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t%s\t-\n", m.name, orDash(m.path))
			continue
		}
		s := slices.Sorted(slices.Values(m.rtts))
		var sum time.Duration
		for _, r := range s {
			sum += r
		}
		r := func(d time.Duration) string { return d.Round(10 * time.Microsecond).String() }
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.name, r(s[0]), r(percentile(s, 50)),
			r(sum/time.Duration(len(s))), r(s[len(s)-1]), rate(m.perf.Upload, m.perf.UploadTime),
			rate(m.perf.Download, m.perf.DownloadTime), m.path, orDash(m.via))
	}
	tw.Flush()
	if o.jsonPath != "" {
		if err := writeMeasureJSON(o.jsonPath, res); err != nil {
			fmt.Fprintf(os.Stderr, "natlab: -json: %v\n", err)
			failed = true
		}
	}
	if failed {
		return 1
	}
	return 0
}

type measureJSON struct {
	Path        string    `json:"path"`
	Error       string    `json:"error,omitempty"`
	PathAfter   string    `json:"path_after"`
	DirectVia   string    `json:"direct_via,omitempty"`
	RTTsMS      []float64 `json:"rtts_ms"`
	UploadMBps  float64   `json:"upload_mb_per_s"`
	DownloadMBs float64   `json:"download_mb_per_s"`
}

func writeMeasureJSON(path string, res []measurement) error {
	var out []measureJSON
	for _, m := range res {
		j := measureJSON{Path: m.name, PathAfter: m.path, DirectVia: m.via}
		if m.err != nil {
			j.Error = m.err.Error()
		}
		for _, r := range m.rtts {
			j.RTTsMS = append(j.RTTsMS, ms(r))
		}
		if m.perf.UploadTime > 0 {
			j.UploadMBps = float64(m.perf.Upload) / m.perf.UploadTime.Seconds() / 1e6
		}
		if m.perf.DownloadTime > 0 {
			j.DownloadMBs = float64(m.perf.Download) / m.perf.DownloadTime.Seconds() / 1e6
		}
		out = append(out, j)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// measureOne builds a lab for sc, sends messages from A to B until B's path
// is want (at most -ready-timeout), then pings and runs perf.
func measureOne(ctx context.Context, o options, sc scenario, want, dir string) (m measurement) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return measurement{err: err}
	}
	t := &trial{o: o, sc: sc, dir: dir, l: &lab{verbose: o.verbose}}
	defer func() {
		if err := t.l.close(); err != nil {
			m.err = errors.Join(m.err, fmt.Errorf("cleanup: %w", err))
		}
	}()
	if m.err = t.setup(ctx); m.err != nil {
		return m
	}
	a := func(timeout time.Duration, cmd string, args ...string) ([]byte, error) {
		qctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return t.l.nsExec(qctx, t.a.s.peer, o.bin, append([]string{cmd, "--api", t.a.api}, args...)...)
	}
	t0 := time.Now()
	for i := 1; ; i++ {
		if _, err := a(10*time.Second, "send", "--timeout", "5s", t.b.id, fmt.Sprintf("warm-up %d", i)); err != nil {
			m.err = fmt.Errorf("warm-up message: %w", err)
			return m
		}
		if m.path = t.path(ctx); m.path == want {
			break
		}
		if time.Since(t0) > o.ready {
			m.err = fmt.Errorf("path still %s after %s, want %s", m.path, o.ready, want)
			return m
		}
		select {
		case <-ctx.Done():
			m.err = ctx.Err()
			return m
		case <-time.After(pollEvery):
		}
	}
	m.waitedFor = time.Since(t0)
	fmt.Fprintf(os.Stderr, "natlab: measure: path %s after %s\n", m.path, m.waitedFor.Round(10*time.Millisecond))
	out, err := a(time.Minute, "ping", "--json", "--count", fmt.Sprint(measurePings), "--interval", measurePingEvery.String(), t.b.id)
	var pj pingJSON
	if err == nil {
		err = decodeJSON("ping", out, &pj)
	}
	if err == nil && (pj.Error != "" || len(pj.RTTs) == 0) {
		err = fmt.Errorf("ping: %d answers, error %q", len(pj.RTTs), pj.Error)
	}
	if err != nil {
		m.err = err
		return m
	}
	m.rtts = pj.RTTs
	out, err = a(5*time.Minute, "perf", "--json", "--upload", fmt.Sprint(measureBytes), "--download", fmt.Sprint(measureBytes), t.b.id)
	if err == nil {
		err = decodeJSON("perf", out, &m.perf)
	}
	if err != nil {
		m.err = err
		return m
	}
	m.path, m.via = t.path(ctx), t.directVia(ctx)
	return m
}

// rate is bytes over d in MB/s and Mbit/s.
func rate(n uint64, d time.Duration) string {
	if n == 0 || d <= 0 {
		return "-"
	}
	mbps := float64(n) / d.Seconds() / 1e6
	return fmt.Sprintf("%.0f MB/s (%.0f Mbit/s)", mbps, mbps*8)
}
