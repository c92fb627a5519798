// Command tunnel measures TCP tunnels (overlay expose / overlay forward)
// with every node in its own process, on 127.0.0.1 only, on two paths:
//
//   - relayed: two WebSocket-only peers through an overlay relay;
//   - direct:  two peers over a direct TCP connection (as after a hole punch).
//
// On each path it measures, against the same path without a tunnel:
//
//   - throughput of one forwarded TCP connection, each way, against
//     `overlay perf` (/perf/1.0.0) between the same two nodes (medians);
//   - connection setup through the tunnel (dial the forward, one byte to an
//     echo service and back), p50 and p99, against the same through a plain
//     loopback TCP connection to the echo service;
//   - N concurrent idle forwarded connections (each carried one echo): what
//     each costs on the forwarding and on the serving node (live heap after
//     a GC, RSS, goroutines).
//
// The services (a source of bytes, a sink, an echo) run in this process.
// Run from the module root after `make build`:
//
//	go run ./bench/tunnel -bin bin/overlay [-bytes 268435456] [-idle 1000] [-json out.json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/overlay-net/overlay/node/api"
)

type options struct {
	bin, jsonOut, paths string
	bytes               int64
	rounds, setups      int
	idle                int
	keep                bool
	// relayPort and directPort fix the ports the A-B traffic crosses, so
	// that shaped.sh can rate-limit exactly that traffic; 0: any port.
	relayPort, directPort int
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/overlay", "overlay binary")
	flag.Int64Var(&o.bytes, "bytes", 256<<20, "bytes per transfer")
	flag.IntVar(&o.rounds, "rounds", 3, "transfers per measurement; the table shows the median")
	flag.IntVar(&o.setups, "setups", 500, "connections set up one after another, for the setup percentiles")
	flag.IntVar(&o.idle, "idle", 1000, "concurrent idle forwarded connections, for the memory each costs")
	flag.StringVar(&o.paths, "paths", "relayed,direct", "paths to measure, comma-separated")
	flag.StringVar(&o.jsonOut, "json", "", "write the results as JSON to this file")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (data dirs and logs)")
	flag.IntVar(&o.relayPort, "relay-port", 0, "the relay's WebSocket port (0: any free one)")
	flag.IntVar(&o.directPort, "direct-port", 0, "the direct path's B listens on this TCP port (0: any free one)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/tunnel:", err)
		os.Exit(1)
	}
}

// result is one path's figures.
type result struct {
	Path              string  `json:"path"`
	PerfDownMBps      float64 `json:"perf_download_mb_s"`
	TunnelDownMBps    float64 `json:"tunnel_download_mb_s"`
	PerfUpMBps        float64 `json:"perf_upload_mb_s"`
	TunnelUpMBps      float64 `json:"tunnel_upload_mb_s"`
	SetupP50          float64 `json:"setup_p50_ms"`
	SetupP99          float64 `json:"setup_p99_ms"`
	PlainP50          float64 `json:"plain_p50_ms"`
	PlainP99          float64 `json:"plain_p99_ms"`
	Idle              int     `json:"idle_conns"`
	FwdHeapPerConn    float64 `json:"forwarding_heap_bytes_per_conn"`
	SrvHeapPerConn    float64 `json:"serving_heap_bytes_per_conn"`
	FwdRSSPerConn     float64 `json:"forwarding_rss_bytes_per_conn"`
	SrvRSSPerConn     float64 `json:"serving_rss_bytes_per_conn"`
	FwdGoroutinesConn float64 `json:"forwarding_goroutines_per_conn"`
	SrvGoroutinesConn float64 `json:"serving_goroutines_per_conn"`
}

func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "bench-tunnel")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	} else {
		fmt.Println("data and logs in", dir)
	}
	ps := &procs{}
	defer ps.kill()
	svcs, err := startServices(o.bytes)
	if err != nil {
		return err
	}
	defer svcs.close()

	_, err = ps.node(ctx, o.bin, dir, "relay", "relay", "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/ws", o.relayPort))
	if err != nil {
		return err
	}
	ws := strings.TrimSpace(firstLine(readFile(filepath.Join(dir, "relay.addrs"))))
	var results []result
	for _, path := range strings.Split(o.paths, ",") {
		var extra []string
		switch path {
		case "relayed":
			extra = []string{"--ws-only"}
		case "direct":
			extra = []string{"--listen", "/ip4/127.0.0.1/tcp/0"}
		default:
			return fmt.Errorf("unknown path %q", path)
		}
		a, err := ps.node(ctx, o.bin, dir, path+"-a", "peer", append([]string{"--relay", ws}, extra...)...)
		if err != nil {
			return err
		}
		if path == "direct" {
			extra = []string{"--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", o.directPort)}
		}
		b, err := ps.node(ctx, o.bin, dir, path+"-b", "peer", append([]string{"--relay", ws}, extra...)...)
		if err != nil {
			return err
		}
		target := b.id
		if path == "direct" {
			target = firstLine(readFile(filepath.Join(dir, path+"-b.addrs")))
		}
		if _, err := a.api.Connect(ctx, target, 30*time.Second); err != nil {
			return fmt.Errorf("%s: connect: %w", path, err)
		}
		fmt.Fprintf(os.Stderr, "%s: measuring\n", path)
		r, err := measure(ctx, o, path, a, b, svcs)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		results = append(results, r)
	}
	report(o, results)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"bytes": o.bytes, "rounds": o.rounds, "setups": o.setups,
			"results": results, "at": time.Now().UTC()}, "", "  ")
		return os.WriteFile(o.jsonOut, append(b, '\n'), 0o644)
	}
	return nil
}

func measure(ctx context.Context, o options, path string, a, b *node, svcs *services) (result, error) {
	r := result{Path: path, Idle: o.idle}
	fwd := map[string]string{}
	for name, addr := range map[string]string{"source": svcs.source.Addr().String(), "sink": svcs.sink.Addr().String(), "echo": svcs.echo.Addr().String()} {
		if _, err := b.api.Expose(ctx, api.ExposeRequest{Name: name, Target: addr}); err != nil {
			return r, fmt.Errorf("expose %s: %w", name, err)
		}
		f, err := a.api.Forward(ctx, api.ForwardRequest{Listen: "127.0.0.1:0", Peer: b.id, Service: name})
		if err != nil {
			return r, fmt.Errorf("forward %s: %w", name, err)
		}
		fwd[name] = f.Listen
	}
	if _, err := echoOnce(fwd["echo"]); err != nil {
		return r, fmt.Errorf("first tunnel: %w", err)
	}
	var perfDown, perfUp, tunDown, tunUp []float64
	mbps := func(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }
	for i := range o.rounds {
		fmt.Fprintf(os.Stderr, "%s: round %d of %d\n", path, i+1, o.rounds)
		p, err := a.api.Perf(ctx, api.PerfRequest{Target: b.id, Download: uint64(o.bytes)})
		if err != nil {
			return r, fmt.Errorf("perf download: %w", err)
		}
		perfDown = append(perfDown, mbps(o.bytes, p.DownloadTime))
		d, err := download(fwd["source"], o.bytes)
		if err != nil {
			return r, fmt.Errorf("tunnel download: %w", err)
		}
		tunDown = append(tunDown, mbps(o.bytes, d))
		p, err = a.api.Perf(ctx, api.PerfRequest{Target: b.id, Upload: uint64(o.bytes)})
		if err != nil {
			return r, fmt.Errorf("perf upload: %w", err)
		}
		perfUp = append(perfUp, mbps(o.bytes, p.Total))
		d, err = upload(fwd["sink"], o.bytes)
		if err != nil {
			return r, fmt.Errorf("tunnel upload: %w", err)
		}
		tunUp = append(tunUp, mbps(o.bytes, d))
	}
	r.PerfDownMBps, r.TunnelDownMBps, r.PerfUpMBps, r.TunnelUpMBps = median(perfDown), median(tunDown), median(perfUp), median(tunUp)

	var tun, plain []time.Duration
	for range o.setups {
		d, err := echoOnce(fwd["echo"])
		if err != nil {
			return r, fmt.Errorf("setup through the tunnel: %w", err)
		}
		tun = append(tun, d)
		if d, err = echoOnce(svcs.echo.Addr().String()); err != nil {
			return r, fmt.Errorf("plain setup: %w", err)
		}
		plain = append(plain, d)
	}
	r.SetupP50, r.SetupP99 = ms(pct(tun, 50)), ms(pct(tun, 99))
	r.PlainP50, r.PlainP99 = ms(pct(plain, 50)), ms(pct(plain, 99))
	if o.idle > 0 {
		if err := idleCost(ctx, &r, o.idle, fwd["echo"], a, b); err != nil {
			return r, fmt.Errorf("idle connections: %w", err)
		}
	}
	return r, nil
}

// idleCost opens n forwarded connections, each carrying one echo, and
// reads what both nodes hold before and after (heap after a GC, RSS,
// goroutines).
func idleCost(ctx context.Context, r *result, n int, addr string, a, b *node) error {
	type snap struct {
		rt  api.Runtime
		rss int64
	}
	take := func(nd *node) (snap, error) {
		rt, err := nd.api.RuntimeAfterGC(ctx)
		return snap{rt, rssOf(nd.pid)}, err
	}
	a0, err := take(a)
	if err != nil {
		return err
	}
	b0, err := take(b)
	if err != nil {
		return err
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, c)
		if err := echoOn(c); err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
	}
	a1, err := take(a)
	if err != nil {
		return err
	}
	b1, err := take(b)
	if err != nil {
		return err
	}
	per := func(x, y int64) float64 { return float64(y-x) / float64(n) }
	r.FwdHeapPerConn = per(int64(a0.rt.HeapInuse), int64(a1.rt.HeapInuse))
	r.SrvHeapPerConn = per(int64(b0.rt.HeapInuse), int64(b1.rt.HeapInuse))
	r.FwdRSSPerConn, r.SrvRSSPerConn = per(a0.rss, a1.rss), per(b0.rss, b1.rss)
	r.FwdGoroutinesConn = per(int64(a0.rt.Goroutines), int64(a1.rt.Goroutines))
	r.SrvGoroutinesConn = per(int64(b0.rt.Goroutines), int64(b1.rt.Goroutines))
	return nil
}

func report(o options, rs []result) {
	fmt.Printf("\nTunnels: %d MiB per transfer, median of %d; setup over %d connections; %d idle connections\n\n",
		o.bytes>>20, o.rounds, o.setups, o.idle)
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tperf down MB/s\ttunnel down MB/s\tratio\tperf up MB/s\ttunnel up MB/s\tratio\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t%.0f\t%.0f\t%.2f\t\n", r.Path, r.PerfDownMBps, r.TunnelDownMBps,
			r.TunnelDownMBps/r.PerfDownMBps, r.PerfUpMBps, r.TunnelUpMBps, r.TunnelUpMBps/r.PerfUpMBps)
	}
	tw.Flush()
	fmt.Println()
	fmt.Fprintln(tw, "path\tsetup p50 ms\tsetup p99 ms\tplain p50 ms\tplain p99 ms\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.3f\t%.3f\t\n", r.Path, r.SetupP50, r.SetupP99, r.PlainP50, r.PlainP99)
	}
	tw.Flush()
	fmt.Println()
	fmt.Fprintln(tw, "path\tfwd heap B/conn\tsrv heap B/conn\tfwd RSS B/conn\tsrv RSS B/conn\tfwd goroutines/conn\tsrv goroutines/conn\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.1f\t\n", r.Path, r.FwdHeapPerConn, r.SrvHeapPerConn,
			r.FwdRSSPerConn, r.SrvRSSPerConn, r.FwdGoroutinesConn, r.SrvGoroutinesConn)
	}
	tw.Flush()
}

// ---- transfers ----

func download(addr string, n int64) (time.Duration, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	got, err := io.CopyBuffer(io.Discard, c, make([]byte, 64<<10))
	if err == nil && got != n {
		err = fmt.Errorf("got %d bytes, want %d", got, n)
	}
	return time.Since(start), err
}

// upload sends n bytes to the sink, which answers one byte once it read them all.
func upload(addr string, n int64) (time.Duration, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	if err := writeZeros(c, n); err != nil {
		return 0, err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return 0, fmt.Errorf("sink's answer: %w", err)
	}
	return time.Since(start), nil
}

// echoOnce dials addr and has one byte echoed: connection setup plus one
// round trip.
func echoOnce(addr string) (time.Duration, error) {
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	err = echoOn(c)
	return time.Since(start), err
}

func echoOn(c net.Conn) error {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte{'x'}); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if b[0] != 'x' {
		return errors.New("echo changed the byte")
	}
	return nil
}

func writeZeros(w io.Writer, n int64) error {
	buf := make([]byte, 64<<10)
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := w.Write(buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// ---- figures ----

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rssOf reads a process's resident set from /proc.
func rssOf(pid int) int64 {
	for _, l := range strings.Split(readFile(fmt.Sprintf("/proc/%d/status", pid)), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(l)
}
