// Command capacity measures how many reservations one overlay relay holds:
// it starts one `overlay relay` process and N private peers in separate
// load processes (this program re-executed with -load), and reports the time
// until all N are reserved, reservations lost and renewed during a hold, the
// relay's RSS and CPU, and the RTT of messages that pairs of peers send each
// other through the relay.
//
//	go run ./bench/capacity -bin bin/overlay -n 200 -hold 20s -ttl 10s
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/overlay-net/overlay/bench/capacity/relayproc"
)

type flags struct {
	bin, jsonOut, relayArgs string
	netns, strict, full     bool
	n, procs                int
	hold, ttl, stall        time.Duration
	sendTimeout, idleWait   time.Duration
	pairsFrac, rate         float64
	keep                    bool
}

func main() {
	var f flags
	load := flag.Bool("load", false, "internal: run as a load process")
	loadProc := flag.Int("load-proc", 0, "internal: load process index")
	loadRelay := flag.String("load-relay", "", "internal: relay address")
	loadPairs := flag.Int("load-pairs", 0, "internal: message pairs in this process")
	flag.StringVar(&f.bin, "bin", "bin/overlay", "path to the overlay binary")
	flag.IntVar(&f.n, "n", 1000, "private peers")
	flag.DurationVar(&f.hold, "hold", 3*time.Minute, "how long to hold all reservations after the ramp")
	flag.DurationVar(&f.ttl, "ttl", time.Minute, "reservation TTL given to the relay (peers renew at half)")
	flag.Float64Var(&f.pairsFrac, "pairs-frac", 0.1, "fraction of peers that form message pairs (one message a second per pair)")
	flag.Float64Var(&f.rate, "rate", 500, "peers started per second, all load processes together")
	flag.IntVar(&f.procs, "procs", 1, "load processes")
	flag.StringVar(&f.jsonOut, "json", "", "write the result as JSON to this file")
	flag.DurationVar(&f.stall, "stall", 60*time.Second, "end the ramp when no new peer got reserved for this long")
	flag.DurationVar(&f.sendTimeout, "send-timeout", 10*time.Second, "timeout of one message")
	flag.DurationVar(&f.idleWait, "idle-wait", 3*time.Second, "wait after the relay starts before reading its idle RSS")
	flag.StringVar(&f.relayArgs, "relay-args", "", "more relay flags, space separated (e.g. limits)")
	flag.BoolVar(&f.keep, "keep", false, "keep the temporary directory (relay log, load logs)")
	flag.BoolVar(&f.strict, "strict", false, "exit 1 unless every peer reserved, none lost a reservation and no message failed (for CI)")
	flag.BoolVar(&f.full, "full", false, "make every load peer a full overlay node (default: message pairs full, the rest thin peers that only hold a reservation; see thin.go)")
	flag.BoolVar(&f.netns, "netns", false, "run each load process in its own network namespace with its own IP (root; see netns.go), as peers behind many IPs")
	flag.Parse()
	if *load {
		err := runLoad(*loadProc, *loadRelay, f.n, *loadPairs, f.rate, f.sendTimeout, f.full)
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	dir, cleanup, err := relayproc.Workdir("overlay-capacity-", f.keep, func() {
		if f.netns {
			labDown(f.procs)
		}
	})
	if err != nil {
		fatal(err)
	}
	res, err := run(f, dir)
	cleanup()
	err = relayproc.Report(res, func(r *Result) { printResult(os.Stdout, r) }, f.jsonOut, err)
	if f.keep {
		fmt.Fprintln(os.Stderr, "logs kept in", dir)
	}
	if err == nil && f.strict && res != nil {
		if bad := strictFailure(res); bad != "" {
			err = errors.New("strict: " + bad)
		}
	}
	if err != nil {
		if res != nil { // the details are in the report above
			err = errors.New(strings.SplitN(err.Error(), "\n", 2)[0])
		}
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "capacity:", err)
	os.Exit(1)
}

// Result is what a run measured; bench/plot reads it.
type Result struct {
	N            int     `json:"n"`
	Procs        int     `json:"procs"`
	NetNS        bool    `json:"netns"`
	Rate         float64 `json:"rate"`
	Hold         string  `json:"hold"`
	TTL          string  `json:"ttl"`
	PairsFrac    float64 `json:"pairs_frac"`
	Started      string  `json:"started"`
	RelayCommand string  `json:"relay_command"`

	RampComplete bool   `json:"ramp_complete"`
	Stopped      string `json:"stopped,omitempty"` // where and why the run fell short
	// TimeToAllS runs from the first peer's start to the moment all N hold
	// a reservation (0 when they never did).
	TimeToAllS       float64           `json:"time_to_all_reserved_s"`
	RampS            float64           `json:"ramp_s"`  // first start to end of ramp (all reserved, or stall)
	StartS           float64           `json:"start_s"` // first start to last node.New returned
	ReserveMs        relayproc.Pcts    `json:"reserve_latency_ms"`
	ReservedRampEnd  int               `json:"reserved_at_ramp_end"`
	ReservedEnd      int               `json:"reserved_end"` // held at the end of the hold
	ReservedMin      int               `json:"reserved_min_during_hold"`
	StartFailed      int               `json:"start_failed"`
	NeverReserved    int               `json:"never_reserved"`
	LostHold         int64             `json:"lost_during_hold"`
	RenewedHold      int64             `json:"renewed_during_hold"`
	LostTotal        int64             `json:"lost_total"`
	RenewedTotal     int64             `json:"renewed_total"`
	NotReservedWhy   []relayproc.Count `json:"not_reserved_reasons"`
	NotReservedState []relayproc.Count `json:"not_reserved_states"`
	LostWhy          []relayproc.Count `json:"lost_reasons"`
	StartErrors      []relayproc.Count `json:"start_errors"`

	Relay    RelayFigures `json:"relay"`
	Load     LoadFigures  `json:"load"`
	Messages MsgFigures   `json:"messages"`
	Series   []Sample     `json:"series"`
}

// RelayFigures are the relay process's resources.
type RelayFigures struct {
	RSSIdleKiB  int64      `json:"rss_idle_kib"`
	RSSRampKiB  int64      `json:"rss_ramp_end_kib"`
	RSSPeakKiB  int64      `json:"rss_peak_kib"` // VmHWM
	RSSEndKiB   int64      `json:"rss_end_kib"`  // at the end of the hold
	PerResKiB   float64    `json:"rss_per_reservation_kib"`
	CPURampS    float64    `json:"cpu_ramp_s"`
	CPUHoldS    float64    `json:"cpu_hold_s"`
	CPUHoldPct  float64    `json:"cpu_hold_pct"` // of one core
	Goroutines  [2]int     `json:"goroutines_idle_end"`
	HeapInuseMi [2]float64 `json:"heap_inuse_mib_idle_end"`
	// Memory splits the RSS per reservation (measured after the hold's end,
	// idle subtracted) into what no GC setting can remove and the rest.
	Memory   *MemorySplit      `json:"memory_per_reservation,omitempty"`
	LogWarn  int               `json:"log_warn"`
	LogError int               `json:"log_error"`
	LogTop   []relayproc.Count `json:"log_top"`
	Status   json.RawMessage   `json:"status_end,omitempty"`
}

// MemorySplit is the relay's memory per reservation, KiB: goroutine
// stacks, the heap still live after a forced collection, and the rest of
// the RSS (the collector's headroom, free spans not yet returned, the
// runtime's own). Stacks plus live heap is the floor below which no GC
// setting takes the RSS.
type MemorySplit struct {
	StacksKiB   float64 `json:"stacks_kib"`
	LiveHeapKiB float64 `json:"live_heap_kib"`
	RestKiB     float64 `json:"rest_kib"`
}

func splitMemory(perRes float64, idle, end relayproc.Runtime, held int) *MemorySplit {
	if held <= 0 || end.HeapAlloc == 0 {
		return nil
	}
	per := func(a, b uint64) float64 { return round((float64(b)-float64(a))/1024/float64(held), 1) }
	m := &MemorySplit{StacksKiB: per(idle.StackInuse, end.StackInuse), LiveHeapKiB: per(idle.HeapAlloc, end.HeapAlloc)}
	m.RestKiB = round(perRes-m.StacksKiB-m.LiveHeapKiB, 1)
	return m
}

// LoadFigures are the load processes' resources.
type LoadFigures struct {
	RSSPeakKiB int64   `json:"rss_peak_kib"` // sum over processes
	PerPeerKiB float64 `json:"rss_per_peer_kib"`
	CPUS       float64 `json:"cpu_s"`
}

// MsgFigures are the pairs' messages during the hold.
type MsgFigures struct {
	Pairs        int64             `json:"pairs"`
	Sent         int64             `json:"sent"`
	OK           int64             `json:"ok"`
	Failed       int64             `json:"failed"`
	WarmupFailed int64             `json:"warmup_failed"`
	RTTms        relayproc.Pcts    `json:"rtt_ms"`
	Errors       []relayproc.Count `json:"errors"`
}

// Sample is the relay's RSS against reservations held, once a second.
type Sample struct {
	T        float64 `json:"t_s"`
	Reserved int     `json:"reserved"`
	RSSKiB   int64   `json:"rss_kib"`
}

// child is one load process as the parent sees it.
type child struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	log      string
	mu       sync.Mutex
	last     loadMsg
	final    *loadMsg
	gotFinal chan struct{}
	exited   chan struct{}
}

func (c *child) progress() loadMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

func startChild(f flags, i, count, pairs int, relayAddr, dir string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &child{log: filepath.Join(dir, fmt.Sprintf("load%d.log", i)), gotFinal: make(chan struct{}), exited: make(chan struct{})}
	args := []string{self, "-load", "-load-proc", strconv.Itoa(i), "-load-relay", relayAddr,
		"-n", strconv.Itoa(count), "-load-pairs", strconv.Itoa(pairs),
		"-rate", fmt.Sprint(f.rate / float64(f.procs)), "-send-timeout", f.sendTimeout.String(),
		"-full=" + strconv.FormatBool(f.full)}
	if f.netns {
		args = append([]string{"ip", "netns", "exec", labNS(i)}, args...)
	}
	c.cmd = exec.Command(args[0], args[1:]...)
	logf, err := os.Create(c.log)
	if err != nil {
		return nil, err
	}
	c.cmd.Stderr = logf
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := relayproc.Start(c.cmd); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 256<<20)
		for sc.Scan() {
			var m loadMsg
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			c.mu.Lock()
			if m.Type == "final" {
				if c.final == nil {
					c.final = &m
					close(c.gotFinal)
				}
			} else {
				c.last = m
			}
			c.mu.Unlock()
		}
		_ = c.cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	return c, nil
}

func (c *child) tell(cmd string) { _, _ = io.WriteString(c.stdin, cmd+"\n") }

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

func run(f flags, dir string) (*Result, error) {
	if f.n < 1 || f.procs < 1 || f.rate <= 0 {
		return nil, errors.New("-n, -procs and -rate must be positive")
	}
	bin, err := filepath.Abs(f.bin)
	if err != nil {
		return nil, err
	}
	opts := relayproc.Options{TTL: f.ttl, MaxReservations: f.n + 100, Extra: strings.Fields(f.relayArgs)}
	if f.netns {
		if err := labUp(f.procs); err != nil {
			return nil, err
		}
		opts.Listen = "/ip4/" + relayIP + "/tcp/0/ws"
	}
	relay, err := relayproc.StartRelay(bin, dir, opts)
	if err != nil {
		return nil, err
	}
	defer relay.Stop()
	res := &Result{N: f.n, Procs: f.procs, NetNS: f.netns, Rate: f.rate, Hold: f.hold.String(), TTL: f.ttl.String(),
		PairsFrac: f.pairsFrac, Started: time.Now().UTC().Format(time.RFC3339),
		RelayCommand: strings.Join(relay.Args(), " ")}
	logf("relay pid %d at %s (log %s)", relay.PID, relay.WSAddr, relay.LogPath)
	time.Sleep(f.idleWait)
	idle, err := relayproc.ReadMem(relay.PID)
	if err != nil {
		return nil, err
	}
	rt0 := relay.Runtime()
	live0 := relay.LiveRuntime()
	cpu0, _ := relayproc.CPUSeconds(relay.PID)
	res.Relay.RSSIdleKiB = idle.RSS
	logf("relay idle: RSS %.1f MiB, %d goroutines", mib(idle.RSS), rt0.Goroutines)

	// Split peers and pairs over the load processes.
	totalPairs := int(math.Round(float64(f.n) * f.pairsFrac / 2))
	var kids []*child
	for i := range f.procs {
		count := f.n/f.procs + b2i(i < f.n%f.procs)
		pairs := totalPairs/f.procs + b2i(i < totalPairs%f.procs)
		pairs = min(pairs, count/2)
		c, err := startChild(f, i, count, pairs, relay.WSAddr, dir)
		if err != nil {
			return res, err
		}
		kids = append(kids, c)
	}
	sum := func() (s loadMsg) {
		s.FirstStartNs = math.MaxInt64
		for _, c := range kids {
			p := c.progress()
			s.Started += p.Started
			s.StartFailed += p.StartFailed
			s.Reserved += p.Reserved
			s.LostHold += p.LostHold
			s.RenewedHold += p.RenewedHold
			s.Sent += p.Sent
			s.SendFailed += p.SendFailed
			s.LastStartNs = max(s.LastStartNs, p.LastStartNs)
			if p.FirstStartNs > 0 {
				s.FirstStartNs = min(s.FirstStartNs, p.FirstStartNs)
			}
			if p.AllReservedNs == 0 || s.AllReservedNs < 0 {
				s.AllReservedNs = -1
			} else {
				s.AllReservedNs = max(s.AllReservedNs, p.AllReservedNs)
			}
		}
		return s
	}
	// Sampling: relay RSS, reservations, load RSS and CPU.
	t0 := time.Now()
	var smu sync.Mutex
	var loadPeak int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			m, err := relayproc.ReadMem(relay.PID)
			if err != nil {
				continue
			}
			var lr int64
			for _, c := range kids {
				if cm, err := relayproc.ReadMem(c.cmd.Process.Pid); err == nil {
					lr += cm.RSS
				}
			}
			smu.Lock()
			res.Series = append(res.Series, Sample{T: round(time.Since(t0).Seconds(), 1), Reserved: sum().Reserved, RSSKiB: m.RSS})
			loadPeak = max(loadPeak, lr)
			smu.Unlock()
		}
	}()
	defer func() {
		select {
		case <-sampled:
		default:
			close(stopSampling)
			<-sampled
		}
	}()
	watch := func() error { // the relay or a load process died
		select {
		case <-relay.Exited():
			return fmt.Errorf("relay exited (%v); last log lines:\n%s", relay.ExitError(), relay.LogTail(3))
		default:
		}
		for i, c := range kids {
			select {
			case <-c.exited:
				return fmt.Errorf("load process %d exited; last log lines:\n%s", i, tail(c.log, 5))
			default:
			}
		}
		return nil
	}

	// Ramp: until all N are reserved, or no new one for -stall.
	var runErr error // the relay or a load process died: report what is known
	best, bestAt, lastLog := 0, time.Now(), time.Now()
	for {
		time.Sleep(250 * time.Millisecond)
		if runErr = watch(); runErr != nil {
			res.Stopped = "ramp: " + runErr.Error()
			break
		}
		s := sum()
		if s.Reserved > best {
			best, bestAt = s.Reserved, time.Now()
		}
		if time.Since(lastLog) >= 2*time.Second {
			m, _ := relayproc.ReadMem(relay.PID)
			logf("ramp %5.1fs: started %d/%d, reserved %d, relay RSS %.1f MiB", time.Since(t0).Seconds(), s.Started, f.n, s.Reserved, mib(m.RSS))
			lastLog = time.Now()
		}
		if s.Reserved == f.n && s.AllReservedNs > 0 {
			res.RampComplete = true
			res.TimeToAllS = round(float64(s.AllReservedNs-s.FirstStartNs)/1e9, 3)
			res.RampS = res.TimeToAllS
			break
		}
		if s.Started+s.StartFailed == f.n && time.Since(bestAt) > f.stall {
			res.RampS = round(float64(time.Now().UnixNano()-s.FirstStartNs)/1e9, 3)
			res.Stopped = fmt.Sprintf("ramp stalled: %d of %d peers reserved, no new reservation for %s (%d started, %d failed to start); holding what is reserved",
				s.Reserved, f.n, f.stall, s.Started, s.StartFailed)
			logf("%s", res.Stopped)
			break
		}
	}
	s := sum()
	res.ReservedRampEnd, res.ReservedMin = s.Reserved, s.Reserved
	res.StartS = round(float64(s.LastStartNs-s.FirstStartNs)/1e9, 2)
	if m, err := relayproc.ReadMem(relay.PID); err == nil {
		res.Relay.RSSRampKiB = m.RSS
	}
	cpu1, err := relayproc.CPUSeconds(relay.PID)
	if err != nil {
		cpu1 = cpu0
	}
	res.Relay.CPURampS = round(cpu1-cpu0, 2)
	logf("ramp done in %.1fs: %d reserved; holding %s with %d message pairs", res.RampS, s.Reserved, f.hold, totalPairs)

	// Hold.
	for _, c := range kids {
		c.tell("hold")
	}
	holdStart := time.Now()
	lastLog = time.Now()
	for runErr == nil && time.Since(holdStart) < f.hold {
		time.Sleep(250 * time.Millisecond)
		if runErr = watch(); runErr != nil {
			res.Stopped = "hold: " + runErr.Error()
			break
		}
		s := sum()
		res.ReservedMin = min(res.ReservedMin, s.Reserved)
		if time.Since(lastLog) >= 10*time.Second {
			m, _ := relayproc.ReadMem(relay.PID)
			logf("hold %5.1fs: reserved %d, lost %d, renewed %d, messages %d (%d failed), relay RSS %.1f MiB",
				time.Since(holdStart).Seconds(), s.Reserved, s.LostHold, s.RenewedHold, s.Sent, s.SendFailed, mib(m.RSS))
			lastLog = time.Now()
		}
	}
	cpu2, err := relayproc.CPUSeconds(relay.PID)
	if err != nil {
		cpu2 = cpu1
	}
	res.Relay.CPUHoldS = round(cpu2-cpu1, 2)
	res.Relay.CPUHoldPct = round(100*(cpu2-cpu1)/time.Since(holdStart).Seconds(), 1)
	end, _ := relayproc.ReadMem(relay.PID)
	res.Relay.RSSEndKiB, res.Relay.RSSPeakKiB = end.RSS, end.HWM
	rt1 := relay.Runtime()
	live1 := relay.LiveRuntime() // after RSS and heap in use: it moves both
	res.Relay.Goroutines = [2]int{rt0.Goroutines, rt1.Goroutines}
	res.Relay.HeapInuseMi = [2]float64{round(float64(rt0.HeapInuse)/(1<<20), 1), round(float64(rt1.HeapInuse)/(1<<20), 1)}
	if st, err := relay.Status(); err == nil {
		res.Relay.Status = st
	} else {
		logf("relay status: %v", err)
	}
	var loadCPU float64
	for _, c := range kids {
		cs, _ := relayproc.CPUSeconds(c.cmd.Process.Pid)
		loadCPU += cs
	}
	close(stopSampling)
	<-sampled

	// Final reports.
	for _, c := range kids {
		c.tell("report")
	}
	var rtts, resMs []float64
	why, states, lost, starts, sendErr := map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	add := func(dst, src map[string]int) {
		for k, v := range src {
			dst[k] += v
		}
	}
	for i, c := range kids {
		select {
		case <-c.gotFinal:
		case <-c.exited:
		case <-time.After(2 * time.Minute):
		}
		c.mu.Lock()
		m := c.final
		c.mu.Unlock()
		if m == nil {
			res.Stopped += fmt.Sprintf("; load process %d sent no final report: %s", i, tail(c.log, 5))
			continue
		}
		res.ReservedEnd += m.Reserved
		res.StartFailed += m.StartFailed
		res.NeverReserved += m.NeverReserved
		res.LostHold += m.LostHold
		res.RenewedHold += m.RenewedHold
		res.LostTotal += m.Lost
		res.RenewedTotal += m.Renewed
		res.Messages.Pairs += m.Pairs
		res.Messages.Sent += m.Sent
		res.Messages.OK += m.SendOK
		res.Messages.Failed += m.SendFailed
		res.Messages.WarmupFailed += m.WarmupFailed
		add(why, m.NotReservedReasons)
		add(states, m.NotReservedStates)
		add(lost, m.LostReasons)
		add(starts, m.StartErrors)
		add(sendErr, m.SendErrors)
		for _, v := range m.RTTus {
			rtts = append(rtts, float64(v)/1000)
		}
		for _, v := range m.ReserveMs {
			resMs = append(resMs, float64(v))
		}
		relayproc.Kill(c.cmd.Process.Pid, 9)
	}
	res.Messages.RTTms = roundPcts(relayproc.Percentiles(rtts), 3)
	res.ReserveMs = roundPcts(relayproc.Percentiles(resMs), 0)
	res.NotReservedWhy, res.NotReservedState = relayproc.Top(why, 10), relayproc.Top(states, 10)
	res.LostWhy, res.StartErrors, res.Messages.Errors = relayproc.Top(lost, 10), relayproc.Top(starts, 10), relayproc.Top(sendErr, 10)
	held := res.ReservedEnd
	if held > 0 {
		res.Relay.PerResKiB = round(float64(res.Relay.RSSEndKiB-res.Relay.RSSIdleKiB)/float64(held), 1)
	}
	res.Relay.Memory = splitMemory(res.Relay.PerResKiB, live0, live1, held)
	res.Load.RSSPeakKiB, res.Load.CPUS = loadPeak, round(loadCPU, 1)
	res.Load.PerPeerKiB = round(float64(loadPeak)/float64(f.n), 1)
	res.Relay.LogWarn, res.Relay.LogError, res.Relay.LogTop = relay.LogSummary()
	if res.Stopped == "" && res.ReservedEnd < f.n {
		res.Stopped = fmt.Sprintf("%d of %d peers hold a reservation at the end of the hold", res.ReservedEnd, f.n)
	}
	return res, runErr
}

func printResult(w io.Writer, r *Result) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	p := func(k string, format string, a ...any) {
		fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...)
	}
	p("peers (N)", "%d in %d load process(es), asked %.0f/s, all started in %.2f s (%.0f/s)", r.N, r.Procs, r.Rate, r.StartS, float64(r.N)/max(r.StartS, 0.001))
	if r.RampComplete {
		p("all reserved after", "%.2f s from the first start (per peer p50 %.0f ms, p99 %.0f ms, max %.0f ms)", r.TimeToAllS, r.ReserveMs.P50, r.ReserveMs.P99, r.ReserveMs.Max)
	} else {
		p("all reserved after", "NEVER: %d of %d at the end of the ramp (%.1f s)", r.ReservedRampEnd, r.N, r.RampS)
	}
	p("held at end of hold", "%d (min during hold %d); never reserved %d; failed to start %d", r.ReservedEnd, r.ReservedMin, r.NeverReserved, r.StartFailed)
	p("hold "+r.Hold+", ttl "+r.TTL, "lost %d, renewed %d (whole run: lost %d, renewed %d)", r.LostHold, r.RenewedHold, r.LostTotal, r.RenewedTotal)
	p("relay RSS", "idle %.1f MiB, ramp end %.1f MiB, end of hold %.1f MiB, peak %.1f MiB", mib(r.Relay.RSSIdleKiB), mib(r.Relay.RSSRampKiB), mib(r.Relay.RSSEndKiB), mib(r.Relay.RSSPeakKiB))
	p("relay RSS per reservation", "%.1f KiB", r.Relay.PerResKiB)
	if m := r.Relay.Memory; m != nil {
		p("  of which", "stacks %.1f KiB, live heap %.1f KiB (floor %.1f), GC headroom and the rest %.1f KiB", m.StacksKiB, m.LiveHeapKiB, m.StacksKiB+m.LiveHeapKiB, m.RestKiB)
	}
	p("relay CPU", "ramp %.2f s, hold %.2f s (%.1f%% of a core)", r.Relay.CPURampS, r.Relay.CPUHoldS, r.Relay.CPUHoldPct)
	var st struct {
		Svc *struct {
			Reservations int            `json:"reservations"`
			Circuits     int            `json:"circuits"`
			Refusals     map[string]int `json:"refusals"`
		} `json:"relay_service"`
	}
	if json.Unmarshal(r.Relay.Status, &st) == nil && st.Svc != nil {
		p("relay status at end", "%d reservations, %d circuits, refusals %v", st.Svc.Reservations, st.Svc.Circuits, st.Svc.Refusals)
	}
	p("relay goroutines / heap", "%d -> %d / %.1f -> %.1f MiB; log: %d WARN, %d ERROR", r.Relay.Goroutines[0], r.Relay.Goroutines[1], r.Relay.HeapInuseMi[0], r.Relay.HeapInuseMi[1], r.Relay.LogWarn, r.Relay.LogError)
	p("load processes", "peak RSS %.1f MiB (%.0f KiB per peer), CPU %.1f s", mib(r.Load.RSSPeakKiB), r.Load.PerPeerKiB, r.Load.CPUS)
	m := r.Messages
	p("messages", "%d pairs: %d sent, %d ok, %d failed (warm-up failed %d)", m.Pairs, m.Sent, m.OK, m.Failed, m.WarmupFailed)
	p("message RTT", "p50 %.3f ms, p99 %.3f ms, max %.3f ms", m.RTTms.P50, m.RTTms.P99, m.RTTms.Max)
	tw.Flush()
	if r.Stopped != "" {
		fmt.Fprintf(w, "\nSTOPPED SHORT: %s\n", r.Stopped)
	}
	list := func(title string, cs []relayproc.Count) { relayproc.PrintCounts(w, title, cs) }
	list("peers without a reservation at the end, by last relay reason", r.NotReservedWhy)
	list("peers without a reservation at the end, by state", r.NotReservedState)
	list("reservations lost, by state and reason", r.LostWhy)
	list("peers that failed to start", r.StartErrors)
	list("message errors", m.Errors)
	list("relay log warnings and errors", r.Relay.LogTop)
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", a...)
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func round(v float64, d int) float64 {
	p := math.Pow(10, float64(d))
	return math.Round(v*p) / p
}

func roundPcts(p relayproc.Pcts, d int) relayproc.Pcts {
	p.P50, p.P90, p.P99, p.Max = round(p.P50, d), round(p.P90, d), round(p.P99, d), round(p.Max, d)
	return p
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// strictFailure says what a run that must be perfect got wrong, or "".
func strictFailure(r *Result) string {
	switch {
	case r.Stopped != "":
		return r.Stopped
	case r.LostTotal > 0:
		return fmt.Sprintf("%d reservations lost", r.LostTotal)
	case r.Messages.Failed > 0:
		return fmt.Sprintf("%d messages failed", r.Messages.Failed)
	}
	return ""
}
