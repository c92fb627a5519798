// Command datapath measures the overlay's data path with every node in its own
// process, on 127.0.0.1 only:
//
//   - direct:  two overlay peers over WebSocket, no relay;
//   - overlay: relayed through an overlay relay (`overlay relay`), both hops WebSocket;
//   - stock:   relayed through a stock go-libp2p relay configured as a stock
//     user who wants bulk data through it would (bench/stockrelay -no-limit:
//     default resources, 2 KiB copy buffer, unlimited circuits, Limit nil,
//     which takes go-libp2p's plain copy path), both hops WebSocket: the
//     headline baseline;
//   - stock-limited (not in the default -paths): the same relay with a finite
//     but huge circuit limit (24 h, 2^62 bytes), which takes the counting
//     copy path;
//
// and, for each relayed path, the relay process's CPU time per GB relayed
// (utime+stime from /proc/PID/stat before and after each transfer).
//
// Run from the module root after `make build`:
//
//	go run ./bench/datapath -bin bin/overlay -json datapath.json
//
// It starts two relays, one target peer (listening on WebSocket for the direct
// path, reserved on both relays) and one source peer per path (the relayed
// sources each reserve on their own relay only, so a circuit can go through
// that relay alone). Each round downloads -bytes from the target with
// `overlay perf` on each path in turn; the table shows medians over -rounds.
// Every child runs in its own process group and is killed on exit, on error
// and on SIGINT/SIGTERM.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

type options struct {
	bin, stockBin, jsonOut string
	bytes                  uint64
	rounds                 int
	relayBuffer            int
	stockBuffer            int
	gogc                   string
	paths                  string
	keep                   bool
	label                  string
	relayEnv               multi
	env                    multi
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/overlay", "overlay binary")
	flag.StringVar(&o.stockBin, "stock-bin", "", "stock relay binary (default: build ./bench/stockrelay with `go build` into the temp dir)")
	flag.Uint64Var(&o.bytes, "bytes", 268435456, "bytes per transfer (downloaded from the target)")
	flag.IntVar(&o.rounds, "rounds", 3, "transfers per path; the table shows the median")
	flag.StringVar(&o.jsonOut, "json", "", "write the results as JSON to this file")
	flag.IntVar(&o.relayBuffer, "relay-buffer", 0, "overlay relay --relay-buffer in bytes (0: the relay's default)")
	flag.IntVar(&o.stockBuffer, "stock-buffer", 0, "stock relay copy buffer in bytes (0: stock default, 2048)")
	flag.StringVar(&o.gogc, "gogc", "", "GOGC for the overlay processes (relay and peers); empty: inherit")
	flag.StringVar(&o.paths, "paths", "direct,overlay,stock", "paths to measure, comma-separated: direct, overlay, stock (unlimited circuits), stock-limited (24 h / 2^62-byte circuits)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (data dirs and logs)")
	flag.StringVar(&o.label, "label", "", "free text stored in the JSON (e.g. the experiment)")
	flag.Var(&o.env, "env", "KEY=VALUE added to the environment of every overlay process (relay and peers), repeatable")
	flag.Var(&o.relayEnv, "relay-env", "KEY=VALUE added to the overlay relay's environment only, repeatable (e.g. GOMAXPROCS=1)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, o)
	if err != nil && ctx.Err() != nil {
		err = errors.New("interrupted; every child process was stopped")
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "datapath:", err)
		os.Exit(1)
	}
}

// ---- processes ----

// procs owns every long-running child; kill ends them all.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func (ps *procs) start(ctx context.Context, dir, name string, env []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); lf.Close(); close(p.done) }()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// kill sends SIGTERM to every child's process group, waits up to 3 s, then
// SIGKILLs what is left.
func (ps *procs) kill() {
	ps.mu.Lock()
	list := slices.Clone(ps.list)
	ps.mu.Unlock()
	for _, p := range list {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	}
	deadline := time.After(3 * time.Second)
	for _, p := range list {
		select {
		case <-p.done:
		case <-deadline:
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return p.name + " log (" + p.log + "):\n  " + strings.Join(lines, "\n  ")
}

// procIO is a process's I/O system call counters (/proc/PID/io).
type procIO struct{ syscr, syscw, rchar, wchar uint64 }

func readIO(pid int) procIO {
	var io procIO
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return io // kernels without task I/O accounting: figures stay empty
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		switch k {
		case "syscr":
			io.syscr = n
		case "syscw":
			io.syscw = n
		case "rchar":
			io.rchar = n
		case "wchar":
			io.wchar = n
		}
	}
	return io
}

// cpu sums the CPU time of every child still running.
func (ps *procs) cpu() float64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var t float64
	for _, p := range ps.list {
		if s, err := cpuSeconds(p.cmd.Process.Pid); err == nil {
			t += s
		}
	}
	return t
}

// machineBusy is the CPU time all CPUs spent not idle, from /proc/stat.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy uint64
	// user nice system idle iowait irq softirq steal
	for i, v := range f[1:min(len(f), 9)] {
		if i == 3 || i == 4 {
			continue
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		busy += n
	}
	return float64(busy) / clockTicks
}

// cpuSeconds is the process's user+system CPU time so far, all threads.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime field 14, stime field 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(ut+st) / clockTicks, nil
}

// ---- overlay CLI ----

type bench struct {
	o   options
	ctx context.Context
	ps  *procs
	dir string
	env []string
}

// cli runs one overlay client command and returns its stdout.
func (b *bench) cli(timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.o.bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("overlay %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

type status struct {
	PeerID string `json:"peer_id"`
	Addrs  struct {
		Direct  []string `json:"direct"`
		Relayed []string `json:"relayed"`
	} `json:"addrs"`
	Reservations []struct {
		Relay string `json:"relay"`
	} `json:"reservations"`
	Relays []struct {
		Relay, State, Reason string
	} `json:"relays"`
}

type bookPeer struct {
	ID    string `json:"peer_id"`
	State string `json:"state"`
	Path  string `json:"path"`
}

type perfResult struct {
	Download     uint64 `json:"download_bytes"`
	DownloadTime int64  `json:"download_ns"`
}

// waitFile waits until path holds a line that contains want.
func (b *bench) waitFile(p *proc, path, want string, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		if data, err := os.ReadFile(path); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				if l := strings.TrimSpace(sc.Text()); strings.Contains(l, want) {
					return l, nil
				}
			}
		}
		if !p.alive() {
			return "", fmt.Errorf("%s exited\n%s", p.name, p.tail())
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s: no %q in %s after %s\n%s", p.name, want, path, d, p.tail())
		}
		if err := sleep(b.ctx, 50*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// waitReserved polls `overlay status --json` until the node holds n
// reservations.
func (b *bench) waitReserved(p *proc, api string, n int, d time.Duration) (status, error) {
	deadline := time.Now().Add(d)
	var last status
	for {
		out, err := b.cli(10*time.Second, "status", "--json", "--api", api)
		if err == nil && json.Unmarshal(out, &last) == nil && len(last.Reservations) >= n {
			return last, nil
		}
		if !p.alive() {
			return last, fmt.Errorf("%s exited\n%s", p.name, p.tail())
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("%s: %d of %d reservations after %s (relays: %+v)\n%s", p.name, len(last.Reservations), n, d, last.Relays, p.tail())
		}
		if err := sleep(b.ctx, 200*time.Millisecond); err != nil {
			return last, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

type node struct {
	p   *proc
	api string
	id  string
}

// startNode runs `overlay ARGS... --data DIR --api 127.0.0.1:0` and waits for
// DATA/api.addr.
func (b *bench) startNode(name string, extraEnv []string, args ...string) (*node, error) {
	data := filepath.Join(b.dir, name)
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	args = append(args, "--data", data, "--api", "127.0.0.1:0", "--no-dht", "--network", "bench")
	p, err := b.ps.start(b.ctx, b.dir, name, append(slices.Clone(b.env), extraEnv...), b.o.bin, args...)
	if err != nil {
		return nil, err
	}
	api, err := b.waitFile(p, filepath.Join(data, "api.addr"), ":", 30*time.Second)
	if err != nil {
		return nil, err
	}
	return &node{p: p, api: api}, nil
}

// ---- measurement ----

type round struct {
	Bytes      uint64  `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	MBps       float64 `json:"mb_per_s"`
	RelayCPU   float64 `json:"relay_cpu_s,omitempty"`
	CPUPerGB   float64 `json:"relay_cpu_s_per_gb,omitempty"`
	PathSeenAs string  `json:"path_seen_as"`
	// CPU of the two ends, for comparison with the relay's.
	SourceCPUPerGB float64 `json:"source_cpu_s_per_gb"`
	TargetCPUPerGB float64 `json:"target_cpu_s_per_gb"`
	// OtherCPU is the machine's busy CPU time during the transfer that no
	// process of this benchmark used: load from elsewhere that skews it.
	OtherCPU float64 `json:"other_cpu_s"`
	// The relay's read and write system calls (from /proc/PID/io) per MB
	// moved end to end, and the mean bytes per write.
	RelayReadsPerMB    float64 `json:"relay_reads_per_mb,omitempty"`
	RelayWritesPerMB   float64 `json:"relay_writes_per_mb,omitempty"`
	RelayBytesPerWrite float64 `json:"relay_bytes_per_write,omitempty"`
}

type pathResult struct {
	Name         string  `json:"path"`
	Relay        string  `json:"relay,omitempty"` // overlay, stock, or empty for direct
	Target       string  `json:"target"`
	Rounds       []round `json:"rounds"`
	MedianMBps   float64 `json:"median_mb_per_s"`
	MinMBps      float64 `json:"min_mb_per_s"`
	MaxMBps      float64 `json:"max_mb_per_s"`
	MedianCPUGB  float64 `json:"median_relay_cpu_s_per_gb,omitempty"`
	relayPID     int
	src          *node
	expectedPath string
}

type report struct {
	Time    time.Time `json:"time"`
	Label   string    `json:"label,omitempty"`
	Machine struct {
		NumCPU int    `json:"nproc"`
		CPU    string `json:"cpu_model"`
		Go     string `json:"go_harness"`
		Kernel string `json:"kernel"`
		// Load average at the start and the end of the run.
		LoadStart string `json:"loadavg_start"`
		LoadEnd   string `json:"loadavg_end"`
	} `json:"machine"`
	Config struct {
		Bytes       uint64   `json:"bytes"`
		Rounds      int      `json:"rounds"`
		RelayBuffer int      `json:"overlay_relay_buffer,omitempty"`
		StockBuffer int      `json:"stock_relay_buffer,omitempty"`
		GOGC        string   `json:"gogc,omitempty"`
		RelayEnv    []string `json:"overlay_relay_env,omitempty"`
		Env         []string `json:"overlay_env,omitempty"`
		Bin         string   `json:"bin"`
		// BinVersion is `overlay version --json` of Bin: the commit the
		// figures belong to.
		BinVersion json.RawMessage `json:"bin_version,omitempty"`
	} `json:"config"`
	Units   map[string]string `json:"units"`
	Results []*pathResult     `json:"results"`
}

func run(ctx context.Context, o options) error {
	if o.rounds < 1 || o.bytes == 0 {
		return errors.New("need -rounds >= 1 and -bytes > 0")
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("overlay binary: %w (run `make build` or pass -bin)", err)
	}
	o.bin = bin
	want := map[string]bool{}
	for _, p := range strings.Split(o.paths, ",") {
		switch p = strings.TrimSpace(p); p {
		case "direct", "overlay", "stock", "stock-limited":
			want[p] = true
		default:
			return fmt.Errorf("unknown path %q (direct, overlay, stock, stock-limited)", p)
		}
	}

	dir, err := os.MkdirTemp("", "datapath-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "temp dir:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	ps := &procs{}
	defer ps.kill() // runs before RemoveAll: children first
	b := &bench{o: o, ctx: ctx, ps: ps, dir: dir}
	if o.gogc != "" {
		b.env = []string{"GOGC=" + o.gogc}
	}
	b.env = append(b.env, o.env...)

	// The stock relay binary.
	stockBin := o.stockBin
	if stockBin == "" && (want["stock"] || want["stock-limited"]) {
		stockBin = filepath.Join(dir, "stockrelay")
		fmt.Fprintln(os.Stderr, "building ./bench/stockrelay ...")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", stockBin, "./bench/stockrelay")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build stock relay (run from the module root or pass -stock-bin): %w\n%s", err, out)
		}
	}

	// Relays.
	fmt.Fprintln(os.Stderr, "starting relays and peers ...")
	relayArgs := []string{"relay", "--listen", "/ip4/127.0.0.1/tcp/0/ws", "--addr-file", filepath.Join(dir, "relay.addrs")}
	if o.relayBuffer > 0 {
		relayArgs = append(relayArgs, "--relay-buffer", strconv.Itoa(o.relayBuffer))
	}
	ovl, err := b.startNode("relay", o.relayEnv, relayArgs...)
	if err != nil {
		return err
	}
	ovlAddr, err := b.waitFile(ovl.p, filepath.Join(dir, "relay.addrs"), "/ws/p2p/", 30*time.Second)
	if err != nil {
		return err
	}
	relays := []string{ovlAddr}
	// One stock relay process per stock path, each a separate process so
	// their CPU is measured apart.
	stocks := map[string]*proc{}
	stockAddrs := map[string]string{}
	fmt.Fprintln(os.Stderr, "overlay relay:", ovlAddr)
	for _, name := range []string{"stock", "stock-limited"} {
		if !want[name] {
			continue
		}
		args := []string{"--listen", "/ip4/127.0.0.1/tcp/0/ws", "--addr-file", filepath.Join(dir, name+".addrs")}
		if name == "stock" {
			args = append(args, "--no-limit")
		}
		if o.stockBuffer > 0 {
			args = append(args, "--buffer", strconv.Itoa(o.stockBuffer))
		}
		p, err := ps.start(ctx, dir, name+"relay", nil, stockBin, args...)
		if err != nil {
			return err
		}
		addr, err := b.waitFile(p, filepath.Join(dir, name+".addrs"), "/ws/p2p/", 30*time.Second)
		if err != nil {
			return err
		}
		stocks[name], stockAddrs[name] = p, addr
		relays = append(relays, addr)
		fmt.Fprintf(os.Stderr, "%s relay: %s\n", name, addr)
	}

	// Target: listens on WebSocket for the direct path, reserves on both relays.
	targetArgs := []string{"peer", "--ws-only", "--listen", "/ip4/127.0.0.1/tcp/0/ws"}
	for _, r := range relays {
		targetArgs = append(targetArgs, "--relay", r)
	}
	target, err := b.startNode("target", nil, targetArgs...)
	if err != nil {
		return err
	}
	// Sources: one per path. A relayed source reserves only on its relay, so
	// it knows no other way to the target.
	var results []*pathResult
	add := func(name, relayName, relayAddr string, relayPID int, expect string) error {
		src, err := b.startNode("src-"+name, nil, "peer", "--ws-only", "--relay", relayAddr)
		if err != nil {
			return err
		}
		results = append(results, &pathResult{Name: name, Relay: relayName, relayPID: relayPID, src: src, expectedPath: expect})
		return nil
	}
	if want["direct"] {
		if err := add("direct", "", ovlAddr, 0, "direct"); err != nil {
			return err
		}
	}
	if want["overlay"] {
		if err := add("overlay", "overlay", ovlAddr, ovl.p.cmd.Process.Pid, "relayed"); err != nil {
			return err
		}
	}
	for _, name := range []string{"stock", "stock-limited"} {
		if p := stocks[name]; p != nil {
			if err := add(name, name, stockAddrs[name], p.Process().Pid, "relayed"); err != nil {
				return err
			}
		}
	}

	st, err := b.waitReserved(target.p, target.api, len(relays), 60*time.Second)
	if err != nil {
		return err
	}
	target.id = st.PeerID
	var targetWS string
	for _, a := range st.Addrs.Direct {
		if strings.Contains(a, "/ws") && strings.Contains(a, "127.0.0.1") {
			targetWS = a
		}
	}
	if targetWS == "" {
		return fmt.Errorf("target lists no WebSocket address: %v", st.Addrs.Direct)
	}
	if !strings.Contains(targetWS, "/p2p/") {
		targetWS += "/p2p/" + target.id
	}
	for _, r := range results {
		if _, err := b.waitReserved(r.src.p, r.src.api, 1, 60*time.Second); err != nil {
			return err
		}
		switch r.Relay {
		case "":
			r.Target = targetWS
		case "overlay":
			r.Target = ovlAddr + "/p2p-circuit/p2p/" + target.id
		case "stock", "stock-limited":
			r.Target = stockAddrs[r.Relay] + "/p2p-circuit/p2p/" + target.id
		}
	}

	// Warm-up: open each path's connection and grow its windows; not counted.
	for _, r := range results {
		if _, err := b.perf(r, 4<<20); err != nil {
			return fmt.Errorf("warm-up %s: %w", r.Name, err)
		}
		if _, err := b.checkPath(r, target.id); err != nil {
			return err
		}
	}

	loadStart := loadavg()
	fmt.Fprintf(os.Stderr, "measuring: %d rounds of %d bytes per path\n", o.rounds, o.bytes)
	for i := range o.rounds {
		for _, r := range results {
			var before, after float64
			m0, o0 := machineBusy(), ps.cpu()
			s0, err1 := cpuSeconds(r.src.p.cmd.Process.Pid)
			t0, err2 := cpuSeconds(target.p.cmd.Process.Pid)
			if err := errors.Join(err1, err2); err != nil {
				return err
			}
			var io0, io1 procIO
			if r.relayPID != 0 {
				if before, err = cpuSeconds(r.relayPID); err != nil {
					return err
				}
				io0 = readIO(r.relayPID)
			}
			res, err := b.perf(r, o.bytes)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", i+1, r.Name, err)
			}
			if r.relayPID != 0 {
				if after, err = cpuSeconds(r.relayPID); err != nil {
					return err
				}
				io1 = readIO(r.relayPID)
			}
			m1, o1 := machineBusy(), ps.cpu()
			s1, err1 := cpuSeconds(r.src.p.cmd.Process.Pid)
			t1, err2 := cpuSeconds(target.p.cmd.Process.Pid)
			if err := errors.Join(err1, err2); err != nil {
				return err
			}
			seen, err := b.checkPath(r, target.id)
			if err != nil {
				return err
			}
			secs := float64(res.DownloadTime) / 1e9
			rd := round{Bytes: res.Download, Seconds: secs, MBps: float64(res.Download) / 1e6 / secs, PathSeenAs: seen}
			gb := float64(res.Download) / 1e9
			rd.SourceCPUPerGB, rd.TargetCPUPerGB = (s1-s0)/gb, (t1-t0)/gb
			rd.OtherCPU = max(0, (m1-m0)-(o1-o0))
			if r.relayPID != 0 {
				rd.RelayCPU = after - before
				rd.CPUPerGB = rd.RelayCPU / (float64(res.Download) / 1e9)
				if io1.syscw > io0.syscw {
					mb := float64(res.Download) / 1e6
					rd.RelayReadsPerMB = float64(io1.syscr-io0.syscr) / mb
					rd.RelayWritesPerMB = float64(io1.syscw-io0.syscw) / mb
					rd.RelayBytesPerWrite = float64(io1.wchar-io0.wchar) / float64(io1.syscw-io0.syscw)
				}
			}
			r.Rounds = append(r.Rounds, rd)
			fmt.Fprintf(os.Stderr, "  round %d %-8s %8.1f MB/s", i+1, r.Name, rd.MBps)
			if r.relayPID != 0 {
				fmt.Fprintf(os.Stderr, "  relay CPU %.2f s (%.2f s/GB; %.0f reads, %.0f writes per MB, %.0f B/write)",
					rd.RelayCPU, rd.CPUPerGB, rd.RelayReadsPerMB, rd.RelayWritesPerMB, rd.RelayBytesPerWrite)
			}
			fmt.Fprintf(os.Stderr, "  source %.2f s/GB, target %.2f s/GB", rd.SourceCPUPerGB, rd.TargetCPUPerGB)
			if rd.OtherCPU > 0.1*secs*float64(runtime.NumCPU()) {
				fmt.Fprintf(os.Stderr, "  (busy machine: %.2f CPU s used by other processes)", rd.OtherCPU)
			}
			fmt.Fprintln(os.Stderr)
		}
	}

	var rep report
	rep.Time = time.Now().UTC()
	rep.Label = o.label
	rep.Machine.NumCPU = runtime.NumCPU()
	rep.Machine.CPU = cpuModel()
	rep.Machine.LoadStart, rep.Machine.LoadEnd = loadStart, loadavg()
	rep.Machine.Go = runtime.Version()
	if k, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		rep.Machine.Kernel = strings.TrimSpace(string(k))
	}
	rep.Config.Bytes, rep.Config.Rounds = o.bytes, o.rounds
	rep.Config.RelayBuffer, rep.Config.StockBuffer, rep.Config.GOGC, rep.Config.Bin = o.relayBuffer, o.stockBuffer, o.gogc, o.bin
	rep.Config.RelayEnv, rep.Config.Env = o.relayEnv, o.env
	if v, err := exec.Command(o.bin, "version", "--json").Output(); err == nil && json.Valid(v) {
		rep.Config.BinVersion = v
	}
	rep.Units = map[string]string{"mb_per_s": "1e6 bytes per second, download payload", "relay_cpu_s_per_gb": "relay process utime+stime seconds per 1e9 bytes moved end to end"}
	for _, r := range results {
		var mbps, cpu []float64
		for _, rd := range r.Rounds {
			mbps = append(mbps, rd.MBps)
			cpu = append(cpu, rd.CPUPerGB)
		}
		r.MedianMBps, r.MinMBps, r.MaxMBps = median(mbps), slices.Min(mbps), slices.Max(mbps)
		if r.relayPID != 0 {
			r.MedianCPUGB = median(cpu)
		}
	}
	rep.Results = results

	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "path\tMB/s median\tmin\tmax\trelay CPU s/GB (median)\t\n")
	for _, r := range results {
		cpu := "-"
		if r.relayPID != 0 {
			cpu = fmt.Sprintf("%.2f", r.MedianCPUGB)
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%s\t\n", describe(r), r.MedianMBps, r.MinMBps, r.MaxMBps, cpu)
	}
	tw.Flush()
	if o.jsonOut != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonOut, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func describe(r *pathResult) string {
	switch r.Relay {
	case "overlay":
		return "relayed, overlay relay (WS+WS)"
	case "stock":
		return "relayed, stock relay, unlimited circuits (WS+WS)"
	case "stock-limited":
		return "relayed, stock relay, 24 h / 2^62 B circuits (WS+WS)"
	}
	return "direct (WS)"
}

func (p *proc) Process() *os.Process { return p.cmd.Process }

// perf downloads n bytes from the path's target through its source peer.
func (b *bench) perf(r *pathResult, n uint64) (perfResult, error) {
	var res perfResult
	out, err := b.cli(3*time.Minute, "perf", "--json", "--api", r.src.api, "--upload", "0",
		"--download", strconv.FormatUint(n, 10), "--timeout", "150s", r.Target)
	if err != nil {
		return res, err
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return res, fmt.Errorf("perf output %q: %w", out, err)
	}
	if res.Download != n || res.DownloadTime <= 0 {
		return res, fmt.Errorf("perf: got %d bytes in %d ns, want %d", res.Download, res.DownloadTime, n)
	}
	return res, nil
}

// checkPath confirms in the source's peer book that it reaches the target on
// the expected path: a direct connection would make a "relayed" figure a lie.
func (b *bench) checkPath(r *pathResult, targetID string) (string, error) {
	out, err := b.cli(10*time.Second, "peers", "--json", "--api", r.src.api)
	if err != nil {
		return "", err
	}
	var peers []bookPeer
	if err := json.Unmarshal(out, &peers); err != nil {
		return "", fmt.Errorf("peers output: %w", err)
	}
	for _, p := range peers {
		if p.ID == targetID {
			if p.Path != r.expectedPath {
				return p.Path, fmt.Errorf("%s: source reaches the target on path %q, want %q", r.Name, p.Path, r.expectedPath)
			}
			return p.Path, nil
		}
	}
	return "", fmt.Errorf("%s: target not in the source's peer book", r.Name)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
