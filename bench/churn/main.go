// Command churn measures what strangers cost an overlay relay: it starts one
// `overlay relay` process, then N plain go-libp2p hosts (not overlay members)
// connect to it over WebSocket, -conc at a time, each trying a reservation
// that the relay must refuse, and leave. It reports the relay's RSS before,
// at peak, after the connections drained and after a settle wait, its peer
// book, goroutines and open files before and after.
//
//	go run ./bench/churn -bin bin/overlay -n 10000 -conc 200
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	"github.com/libp2p/go-libp2p/p2p/transport/websocket"

	"github.com/overlay-net/overlay/bench/capacity/relayproc"
)

// Snapshot is the relay at one moment.
type Snapshot struct {
	RSSKiB     int64          `json:"rss_kib"`
	Connected  int            `json:"peers_connected"`
	Book       int            `json:"book_size"`
	BookStates map[string]int `json:"book_states"`
	Goroutines int            `json:"goroutines"`
	HeapInuse  float64        `json:"heap_inuse_mib"`
	FDs        int            `json:"open_fds"`
}

// Result is what a run measured.
type Result struct {
	N            int    `json:"n"`
	Conc         int    `json:"conc"`
	Reserve      bool   `json:"reserve"`
	Started      string `json:"started"`
	RelayCommand string `json:"relay_command"`

	ChurnS      float64 `json:"churn_s"`
	PerSecond   float64 `json:"strangers_per_s"`
	ConnectedOK int64   `json:"connected"`
	// Reservation attempts: refused as expected, granted (a bug), other.
	RefusedDenied int64             `json:"reserve_refused_permission_denied"`
	RefusedOther  []relayproc.Count `json:"reserve_refused_other"`
	Granted       int64             `json:"reserve_granted"`
	ConnectErrors []relayproc.Count `json:"connect_errors"`
	ReserveErrors []relayproc.Count `json:"reserve_errors"`
	ConnectMs     relayproc.Pcts    `json:"connect_ms"`
	ReserveMs     relayproc.Pcts    `json:"reserve_ms"`

	Before     Snapshot `json:"before"`
	PeakRSSKiB int64    `json:"peak_rss_kib"`
	PeakConns  int      `json:"peak_connected_sampled"`
	DrainS     float64  `json:"drain_s"`
	Drained    bool     `json:"drained"`
	After      Snapshot `json:"after_drain"`
	SettleS    float64  `json:"settle_s"`
	Settled    Snapshot `json:"after_settle"`

	StatusBefore json.RawMessage   `json:"status_before,omitempty"`
	StatusAfter  json.RawMessage   `json:"status_after,omitempty"`
	LogWarn      int               `json:"log_warn"`
	LogError     int               `json:"log_error"`
	LogTop       []relayproc.Count `json:"log_top"`
	Series       []Sample          `json:"series"`
}

// Sample is the relay's RSS every 500 ms while strangers come and go.
type Sample struct {
	T      float64 `json:"t_s"`
	Done   int64   `json:"done"`
	RSSKiB int64   `json:"rss_kib"`
}

type flags struct {
	bin, jsonOut, relayArgs    string
	n, conc                    int
	reserve, keep              bool
	settle, drain, dialTimeout time.Duration
}

func main() {
	var f flags
	flag.StringVar(&f.bin, "bin", "bin/overlay", "path to the overlay binary")
	flag.IntVar(&f.n, "n", 10000, "strangers that connect and leave")
	flag.IntVar(&f.conc, "conc", 200, "strangers at a time")
	flag.BoolVar(&f.reserve, "reserve", true, "each stranger asks for a reservation (must be refused)")
	flag.DurationVar(&f.settle, "settle", 70*time.Second, "wait after the connections drained (the relay prunes every minute; the Go runtime forces a GC only every 2 min, so 130s shows memory given back)")
	flag.DurationVar(&f.drain, "drain-timeout", 2*time.Minute, "longest wait for the relay's connections to drain")
	flag.DurationVar(&f.dialTimeout, "timeout", 30*time.Second, "timeout of one stranger's connect and reservation")
	flag.StringVar(&f.jsonOut, "json", "", "write the result as JSON to this file")
	flag.StringVar(&f.relayArgs, "relay-args", "", "more relay flags, space separated (e.g. --stranger-ttl 30s)")
	flag.BoolVar(&f.keep, "keep", false, "keep the temporary directory (relay log)")
	flag.Parse()
	dir, cleanup, err := relayproc.Workdir("overlay-churn-", f.keep, nil)
	if err != nil {
		fatal(err)
	}
	res, err := run(f, dir)
	cleanup()
	err = relayproc.Report(res, func(r *Result) { printResult(os.Stdout, r) }, f.jsonOut, err)
	if f.keep {
		fmt.Fprintln(os.Stderr, "logs kept in", dir)
	}
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "churn:", err)
	os.Exit(1)
}

func snapshot(r *relayproc.Relay) (Snapshot, error) {
	var s Snapshot
	m, err := relayproc.ReadMem(r.PID)
	if err != nil {
		return s, err
	}
	s.RSSKiB = m.RSS
	if s.Connected, err = r.Connected(); err != nil {
		return s, err
	}
	if s.Book, s.BookStates, err = r.Book(); err != nil {
		return s, err
	}
	rt := r.Runtime()
	s.Goroutines, s.HeapInuse = rt.Goroutines, float64(rt.HeapInuse*10/(1<<20))/10
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", r.PID))
	s.FDs = len(fds)
	return s, nil
}

func run(f flags, dir string) (*Result, error) {
	if f.n < 1 || f.conc < 1 {
		return nil, errors.New("-n and -conc must be positive")
	}
	bin, err := filepath.Abs(f.bin)
	if err != nil {
		return nil, err
	}
	relay, err := relayproc.StartRelay(bin, dir, relayproc.Options{TTL: time.Minute, MaxReservations: f.conc + 100,
		Extra: strings.Fields(f.relayArgs)})
	if err != nil {
		return nil, err
	}
	defer relay.Stop()
	res := &Result{N: f.n, Conc: f.conc, Reserve: f.reserve, Started: time.Now().UTC().Format(time.RFC3339),
		RelayCommand: strings.Join(relay.Args(), " ")}
	logf("relay pid %d at %s (log %s)", relay.PID, relay.WSAddr, relay.LogPath)
	time.Sleep(3 * time.Second)
	if res.Before, err = snapshot(relay); err != nil {
		return nil, err
	}
	res.StatusBefore, _ = relay.Status()
	logf("before: RSS %.1f MiB, %d connected, book %d, %d goroutines, %d fds", mib(res.Before.RSSKiB),
		res.Before.Connected, res.Before.Book, res.Before.Goroutines, res.Before.FDs)
	ai, err := peer.AddrInfoFromString(relay.WSAddr)
	if err != nil {
		return res, err
	}

	var done atomic.Int64
	t0 := time.Now()
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // RSS every 500 ms; connections every 5 s (an exec of the CLI)
		defer close(sampled)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			m, err := relayproc.ReadMem(relay.PID)
			if err != nil {
				continue
			}
			res.Series = append(res.Series, Sample{T: float64(time.Since(t0).Milliseconds()/100) / 10, Done: done.Load(), RSSKiB: m.RSS})
			res.PeakRSSKiB = max(res.PeakRSSKiB, m.RSS)
			if i%10 == 9 {
				c, _ := relay.Connected()
				res.PeakConns = max(res.PeakConns, c)
				logf("churn %5.1fs: %d/%d strangers done, relay RSS %.1f MiB, %d connected", time.Since(t0).Seconds(), done.Load(), f.n, mib(m.RSS), c)
			}
		}
	}()

	var (
		mu                 sync.Mutex
		connMs, resMs      []float64
		connErr, resErr    = map[string]int{}, map[string]int{}
		refOther           = map[string]int{}
		next               atomic.Int64
		wg                 sync.WaitGroup
		connOK, denied, ok atomic.Int64
	)
	note := func(m map[string]int, s string) {
		mu.Lock()
		m[relayproc.Normalize(s)]++
		mu.Unlock()
	}
	for range f.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(f.n) {
				stranger(f, *ai, func(cm, rm float64, err error, rsvErr error, reserved bool) {
					defer done.Add(1)
					if err != nil {
						note(connErr, err.Error())
						return
					}
					connOK.Add(1)
					mu.Lock()
					connMs = append(connMs, cm)
					if f.reserve {
						resMs = append(resMs, rm)
					}
					mu.Unlock()
					if !f.reserve {
						return
					}
					var re client.ReservationError
					switch {
					case reserved:
						ok.Add(1)
					case errors.As(rsvErr, &re) && re.Status == pbv2.Status_PERMISSION_DENIED:
						denied.Add(1)
					case errors.As(rsvErr, &re) && re.Status != pbv2.Status_CONNECTION_FAILED:
						note(refOther, re.Status.String()+": "+re.Reason)
					default:
						note(resErr, rsvErr.Error())
					}
				})
			}
		}()
	}
	wg.Wait()
	res.ChurnS = round(time.Since(t0).Seconds(), 2)
	res.PerSecond = round(float64(f.n)/res.ChurnS, 1)
	close(stop)
	<-sampled
	res.ConnectedOK, res.RefusedDenied, res.Granted = connOK.Load(), denied.Load(), ok.Load()
	res.ConnectErrors, res.ReserveErrors, res.RefusedOther = relayproc.Top(connErr, 10), relayproc.Top(resErr, 10), relayproc.Top(refOther, 10)
	res.ConnectMs, res.ReserveMs = roundPcts(relayproc.Percentiles(connMs)), roundPcts(relayproc.Percentiles(resMs))
	logf("churn done: %d strangers in %.1f s; waiting for the relay's connections to drain", f.n, res.ChurnS)

	// Drain, then settle.
	td := time.Now()
	for time.Since(td) < f.drain {
		if c, err := relay.Connected(); err == nil && c <= res.Before.Connected {
			res.Drained = true
			break
		}
		time.Sleep(time.Second)
	}
	res.DrainS = round(time.Since(td).Seconds(), 1)
	if res.After, err = snapshot(relay); err != nil {
		return res, err
	}
	logf("after drain (%.1fs): RSS %.1f MiB, %d connected, book %d; settling %s", res.DrainS, mib(res.After.RSSKiB), res.After.Connected, res.After.Book, f.settle)
	time.Sleep(f.settle)
	res.SettleS = f.settle.Seconds()
	if res.Settled, err = snapshot(relay); err != nil {
		return res, err
	}
	res.StatusAfter, _ = relay.Status()
	res.LogWarn, res.LogError, res.LogTop = relay.LogSummary()
	return res, nil
}

// stranger is one plain libp2p host: connect, maybe ask for a
// reservation, close. report gets the connect and reservation times in ms.
func stranger(f flags, ai peer.AddrInfo, report func(connMs, resMs float64, err, rsvErr error, reserved bool)) {
	ctx, cancel := context.WithTimeout(context.Background(), f.dialTimeout)
	defer cancel()
	h, err := libp2p.New(libp2p.Transport(websocket.New), libp2p.NoListenAddrs, libp2p.DisableRelay())
	if err != nil {
		report(0, 0, fmt.Errorf("new host: %w", err), nil, false)
		return
	}
	defer h.Close()
	t := time.Now()
	if err := h.Connect(ctx, ai); err != nil {
		report(0, 0, err, nil, false)
		return
	}
	cm := ms(time.Since(t))
	if !f.reserve {
		report(cm, 0, nil, nil, false)
		return
	}
	t = time.Now()
	_, rerr := client.Reserve(ctx, h, ai)
	report(cm, ms(time.Since(t)), nil, rerr, rerr == nil)
}

func printResult(w io.Writer, r *Result) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	p := func(k string, format string, a ...any) {
		fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...)
	}
	p("strangers", "%d, %d at a time, in %.1f s (%.0f/s); %d connected", r.N, r.Conc, r.ChurnS, r.PerSecond, r.ConnectedOK)
	p("connect", "p50 %.1f ms, p99 %.1f ms, max %.1f ms", r.ConnectMs.P50, r.ConnectMs.P99, r.ConnectMs.Max)
	if r.Reserve {
		p("reservations", "%d refused PERMISSION_DENIED, %d GRANTED (must be 0), %d refused otherwise, %d errors",
			r.RefusedDenied, r.Granted, sum(r.RefusedOther), sum(r.ReserveErrors))
		p("reserve answer", "p50 %.1f ms, p99 %.1f ms, max %.1f ms", r.ReserveMs.P50, r.ReserveMs.P99, r.ReserveMs.Max)
	}
	p("relay RSS", "before %.1f MiB, peak %.1f MiB, after drain %.1f MiB, after settle (%.0f s) %.1f MiB",
		mib(r.Before.RSSKiB), mib(r.PeakRSSKiB), mib(r.After.RSSKiB), r.SettleS, mib(r.Settled.RSSKiB))
	drained := fmt.Sprintf("drained in %.1f s", r.DrainS)
	if !r.Drained {
		drained = fmt.Sprintf("NOT drained after %.1f s", r.DrainS)
	}
	p("relay connections", "before %d, peak sampled %d, after %d, after settle %d (%s)", r.Before.Connected, r.PeakConns, r.After.Connected, r.Settled.Connected, drained)
	p("relay peer book", "before %d, after drain %d %v, after settle %d %v", r.Before.Book, r.After.Book, r.After.BookStates, r.Settled.Book, r.Settled.BookStates)
	p("relay goroutines", "before %d, after drain %d, after settle %d", r.Before.Goroutines, r.After.Goroutines, r.Settled.Goroutines)
	p("relay heap in use", "before %.1f MiB, after drain %.1f MiB, after settle %.1f MiB", r.Before.HeapInuse, r.After.HeapInuse, r.Settled.HeapInuse)
	p("relay open fds", "before %d, after drain %d, after settle %d", r.Before.FDs, r.After.FDs, r.Settled.FDs)
	p("relay log", "%d WARN, %d ERROR", r.LogWarn, r.LogError)
	tw.Flush()
	list := func(title string, cs []relayproc.Count) { relayproc.PrintCounts(w, title, cs) }
	list("connect errors", r.ConnectErrors)
	list("reservations refused otherwise", r.RefusedOther)
	list("reservation errors", r.ReserveErrors)
	list("relay log warnings and errors", r.LogTop)
}

func sum(cs []relayproc.Count) (n int) {
	for _, c := range cs {
		n += c.Count
	}
	return n
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", a...)
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func round(v float64, d int) float64 {
	p := 1.0
	for range d {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

func roundPcts(p relayproc.Pcts) relayproc.Pcts {
	p.P50, p.P90, p.P99, p.Max = round(p.P50, 1), round(p.P90, 1), round(p.P99, 1), round(p.Max, 1)
	return p
}
