// Package relayproc runs an `overlay relay` process for the benchmarks under
// bench/ and reads what the kernel and the relay's control API say about it.
// Every process it starts sits in its own process group and is killed, group
// and all, by KillAll, on SIGINT/SIGTERM (HandleSignals), and by the kernel
// if this process dies (Pdeathsig).
package relayproc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/overlay-net/overlay/node/api"
)

var (
	mu    sync.Mutex
	procs = map[int]*exec.Cmd{}
)

// Start starts cmd in its own process group, killed with this process.
func Start(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	mu.Lock()
	procs[cmd.Process.Pid] = cmd
	mu.Unlock()
	return nil
}

// Kill sends sig to the process group of pid and forgets it.
func Kill(pid int, sig syscall.Signal) {
	_ = syscall.Kill(-pid, sig)
	if sig == syscall.SIGKILL {
		mu.Lock()
		delete(procs, pid)
		mu.Unlock()
	}
}

// KillAll kills every process group started by Start.
func KillAll() {
	mu.Lock()
	defer mu.Unlock()
	for pid := range procs {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		delete(procs, pid)
	}
}

// HandleSignals kills every child and exits on SIGINT or SIGTERM.
func HandleSignals(cleanup func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-c
		fmt.Fprintf(os.Stderr, "\n%s: killing child processes\n", s)
		KillAll()
		if cleanup != nil {
			cleanup()
		}
		os.Exit(130)
	}()
}

// Relay is a running `overlay relay`.
type Relay struct {
	Bin, Dir, LogPath string
	WSAddr, API       string
	PID               int
	cmd               *exec.Cmd
	exited            chan struct{}
	waitErr           error
}

// Options are the relay's flags that the benchmarks vary.
type Options struct {
	TTL             time.Duration
	MaxReservations int
	Extra           []string // more flags, appended last
	// Listen is the relay's WebSocket listen address; default a port of
	// 127.0.0.1.
	Listen string
}

// StartRelay starts `bin relay` on a WebSocket port of 127.0.0.1 with its
// data, log and address file in dir, and waits until it has written its
// addresses.
func StartRelay(bin, dir string, o Options) (*Relay, error) {
	r := &Relay{Bin: bin, Dir: dir, LogPath: filepath.Join(dir, "relay.log"), exited: make(chan struct{})}
	addrFile := filepath.Join(dir, "relay.addrs")
	listen := o.Listen
	if listen == "" {
		listen = "/ip4/127.0.0.1/tcp/0/ws"
	}
	args := []string{"relay", "--listen", listen, "--data", filepath.Join(dir, "relay"),
		"--api", "127.0.0.1:0", "--no-dht", "--network", "bench",
		"--reservation-ttl", o.TTL.String(),
		"--max-reservations", strconv.Itoa(o.MaxReservations),
		"--max-reservations-per-ip", strconv.Itoa(o.MaxReservations),
		"--addr-file", addrFile}
	args = append(args, o.Extra...)
	logf, err := os.Create(r.LogPath)
	if err != nil {
		return nil, err
	}
	r.cmd = exec.Command(bin, args...)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := Start(r.cmd); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start relay %s: %w", bin, err)
	}
	r.PID = r.cmd.Process.Pid
	go func() { r.waitErr = r.cmd.Wait(); logf.Close(); close(r.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for r.WSAddr == "" || r.API == "" {
		select {
		case <-r.exited:
			return nil, fmt.Errorf("relay exited at start (%v): %s", r.waitErr, r.LogTail(20))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.Stop()
			return nil, fmt.Errorf("relay wrote no addresses within 30 s: %s", r.LogTail(20))
		}
		if b, err := os.ReadFile(addrFile); err == nil {
			for _, l := range strings.Fields(string(b)) {
				if strings.Contains(l, "/ws/") {
					r.WSAddr = l
				}
			}
		}
		if b, err := os.ReadFile(filepath.Join(dir, "relay", "api.addr")); err == nil {
			r.API = strings.TrimSpace(string(b))
		}
	}
	return r, nil
}

// Args returns the relay's command line, for reports.
func (r *Relay) Args() []string { return r.cmd.Args }

// Exited is closed when the relay process has ended.
func (r *Relay) Exited() <-chan struct{} { return r.exited }

// ExitError says how the relay ended, once Exited is closed.
func (r *Relay) ExitError() error { return r.waitErr }

// Stop sends SIGTERM and, after 12 s, SIGKILL to the relay's group.
func (r *Relay) Stop() {
	Kill(r.PID, syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(12 * time.Second):
	}
	Kill(r.PID, syscall.SIGKILL)
}

// LogTail returns the last n lines of the relay's log.
func (r *Relay) LogTail(n int) string {
	b, _ := os.ReadFile(r.LogPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var reLogKey = regexp.MustCompile(`level=(\w+) msg=("[^"]*"|\S+)(?:.*?\b(limit=(?:"[^"]*"|\S+)))?`)

// LogSummary counts the relay log's WARN and ERROR lines and the most
// common of them by message (and limit=, when the line names one).
func (r *Relay) LogSummary() (warn, errs int, top []Count) {
	f, err := os.Open(r.LogPath)
	if err != nil {
		return 0, 0, nil
	}
	defer f.Close()
	by := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := reLogKey.FindStringSubmatch(sc.Text())
		if m == nil || (m[1] != "WARN" && m[1] != "ERROR") {
			continue
		}
		if m[1] == "WARN" {
			warn++
		} else {
			errs++
		}
		k := m[1] + " " + m[2]
		if m[3] != "" {
			k += " " + m[3]
		}
		by[Normalize(k)]++
	}
	return warn, errs, Top(by, 5)
}

// CLI runs `bin ARGS --api API --json` and returns its output.
func (r *Relay) CLI(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append(args, "--api", r.API, "--json", "--timeout", "50s")
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, r.Bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("overlay %s: %v: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Status returns `overlay status --json` as it came, for reports that keep
// whatever counters the relay adds.
func (r *Relay) Status() (json.RawMessage, error) {
	out, err := r.CLI("status")
	return json.RawMessage(bytes.TrimSpace(out)), err
}

// Connected returns the status's peers_connected.
func (r *Relay) Connected() (int, error) {
	raw, err := r.Status()
	if err != nil {
		return 0, err
	}
	var s struct {
		Peers *int `json:"peers_connected"`
	}
	if err := json.Unmarshal(raw, &s); err != nil || s.Peers == nil {
		return 0, fmt.Errorf("status has no peers_connected: %v", err)
	}
	return *s.Peers, nil
}

// Book returns the size of `overlay peers --json` and the count per state.
func (r *Relay) Book() (int, map[string]int, error) {
	out, err := r.CLI("peers")
	if err != nil {
		return 0, nil, err
	}
	var ps []struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal(out, &ps); err != nil {
		return 0, nil, fmt.Errorf("decode peers: %w", err)
	}
	by := map[string]int{}
	for _, p := range ps {
		by[p.State]++
	}
	return len(ps), by, nil
}

// Runtime is the relay process's goroutines, Go heap and stacks (GET
// /v1/runtime).
type Runtime = api.Runtime

// Runtime asks the control API; errors leave it zero.
func (r *Relay) Runtime() Runtime { return r.runtime("") }

// LiveRuntime collects garbage first, so the heap figures are live data.
// It moves the relay's RSS, so read RSS before it.
func (r *Relay) LiveRuntime() Runtime { return r.runtime("?gc=1") }

func (r *Relay) runtime(query string) Runtime {
	var rt Runtime
	c := http.Client{Timeout: 30 * time.Second}
	if resp, err := c.Get("http://" + r.API + "/v1/runtime" + query); err == nil {
		_ = json.NewDecoder(resp.Body).Decode(&rt)
		resp.Body.Close()
	}
	return rt
}

// Mem is a process's resident memory, KiB.
type Mem struct{ RSS, HWM int64 }

// ReadMem reads VmRSS and VmHWM (peak RSS) from /proc/PID/status.
func ReadMem(pid int) (Mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, err
	}
	var m Mem
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.RSS = v
		case "VmHWM:":
			m.HWM = v
		}
	}
	if m.RSS == 0 {
		return m, errors.New("no VmRSS")
	}
	return m, nil
}

// clkTck is USER_HZ, 100 on every Linux this runs on.
const clkTck = 100

// CPUSeconds reads utime+stime of PID from /proc/PID/stat.
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / clkTck, nil
}

var (
	reID   = regexp.MustCompile(`12D3KooW[1-9A-HJ-NP-Za-km-z]{44}|Qm[1-9A-HJ-NP-Za-km-z]{44}`)
	reShID = regexp.MustCompile(`12D3Ko…[1-9A-HJ-NP-Za-km-z]{6}`)
	rePort = regexp.MustCompile(`(tcp/|:)\d{2,5}\b`)
	reNum  = regexp.MustCompile(`\b\d+(\.\d+)?(ms|s|µs)\b`)
)

// Normalize strips peer IDs, ports and durations from an error or reason so
// that the same failure of many peers counts as one.
func Normalize(s string) string {
	s = reID.ReplaceAllString(s, "<peer>")
	s = reShID.ReplaceAllString(s, "<peer>")
	s = rePort.ReplaceAllString(s, "${1}<port>")
	s = reNum.ReplaceAllString(s, "<dur>")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Count is one line of a summary: a reason and how many had it.
type Count struct {
	What  string `json:"what"`
	Count int    `json:"count"`
}

// Top returns the k most common entries of m, most common first.
func Top(m map[string]int, k int) []Count {
	out := make([]Count, 0, len(m))
	for w, c := range m {
		out = append(out, Count{w, c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].What < out[j].What
	})
	if len(out) > k {
		out = out[:k]
	}
	return out
}

// Pcts are percentiles of a sample, in the sample's unit.
type Pcts struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Percentiles sorts v and reads its percentiles (nearest rank).
func Percentiles(v []float64) Pcts {
	if len(v) == 0 {
		return Pcts{}
	}
	sort.Float64s(v)
	at := func(p float64) float64 {
		i := int(p*float64(len(v))+0.5) - 1
		return v[max(0, min(i, len(v)-1))]
	}
	return Pcts{N: len(v), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: v[len(v)-1]}
}

// Workdir makes a temporary directory for a benchmark run and returns a
// cleanup that kills every child, runs extra (if any) and, unless keep,
// removes the directory. The cleanup also runs on SIGINT, SIGTERM and SIGHUP.
func Workdir(prefix string, keep bool, extra func()) (dir string, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	cleanup = func() {
		KillAll()
		if extra != nil {
			extra()
		}
		if !keep {
			os.RemoveAll(dir)
		}
	}
	HandleSignals(cleanup)
	return dir, cleanup, nil
}

// Report prints a run's result with print and, when path is set, writes it
// there as JSON; it returns err joined with any write error.
func Report[R any](res *R, print func(*R), path string, err error) error {
	if res == nil {
		return err
	}
	print(res)
	if path == "" {
		return err
	}
	b, merr := json.MarshalIndent(res, "", "  ")
	if merr == nil {
		merr = os.WriteFile(path, append(b, '\n'), 0o644)
	}
	return errors.Join(err, merr)
}

// PrintCounts writes a titled list of counts, most first as given; nothing
// when the list is empty.
func PrintCounts(w io.Writer, title string, cs []Count) {
	if len(cs) == 0 {
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	for _, c := range cs {
		fmt.Fprintf(w, "  %6d  %s\n", c.Count, c.What)
	}
}
