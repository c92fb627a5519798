package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bin is the overlay binary built once for the package's tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "overlay-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "overlay")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build overlay: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one overlay daemon under test.
type proc struct {
	cmd  *exec.Cmd
	data string
	logs *syncBuffer // stdout and stderr
	done chan error
}

func start(t *testing.T, data string, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, data, args...)
}

// startEnv starts a daemon with env added to the test's environment.
func startEnv(t *testing.T, env []string, data string, args ...string) *proc {
	t.Helper()
	p := &proc{data: data, logs: &syncBuffer{}, done: make(chan error, 1)}
	args = append(args, "--data", data, "--log-level", "debug")
	if !slices.Contains(args, "--api") {
		args = append(args, "--api", "127.0.0.1:0")
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("logs of %s:\n%s", filepath.Base(data), p.logs.String())
		}
	})
	return p
}

// syncBuffer is a buffer the process writes to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (p *proc) logsSoFar() string { return p.logs.String() }

// api waits for the daemon to write its API address.
func (p *proc) api(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(waitFile(t, filepath.Join(p.data, "api.addr")))
}

// stop sends SIGTERM and checks a clean exit within a few seconds.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err // for Cleanup
		if err != nil {
			t.Errorf("%s exited with %v after SIGTERM", filepath.Base(p.data), err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not exit within 10s of SIGTERM", filepath.Base(p.data))
	}
}

func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// overlay runs a client command and returns its stdout.
func overlay(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("overlay %v: %w: %s", args, err, errb.String())
	}
	return out.String(), err
}

func eventually(t *testing.T, d time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBinaryRelayAndTwoPeers(t *testing.T) {
	dir := t.TempDir()
	r := start(t, filepath.Join(dir, "relay"), "relay",
		"--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/tcp/0/ws",
		"--addr-file", filepath.Join(dir, "relay.addrs"))
	var ws string
	for _, l := range strings.Fields(waitFile(t, filepath.Join(dir, "relay.addrs"))) {
		if strings.Contains(l, "/ws/") {
			ws = l
		}
	}
	if ws == "" {
		t.Fatal("relay wrote no WebSocket address")
	}
	a := start(t, filepath.Join(dir, "a"), "peer", "--relay", ws, "--ws-only")
	b := start(t, filepath.Join(dir, "b"), "peer", "--relay", ws, "--ws-only")
	for _, p := range []*proc{a, b} {
		api := p.api(t)
		eventually(t, 20*time.Second, "peer healthy", func() error {
			_, err := overlay(t, "health", "--api", api)
			return err
		})
	}
	out, err := overlay(t, "id", "--key", filepath.Join(b.data, "identity.key"))
	if err != nil {
		t.Fatal(err)
	}
	bID := strings.TrimSpace(out)

	if out, err = overlay(t, "connect", "--api", a.api(t), bID); err != nil {
		t.Fatalf("connect by peer ID: %v", err)
	}
	if !strings.Contains(out, "member") {
		t.Errorf("connect printed %q, want the peer as member", out)
	}
	out, err = overlay(t, "peers", "--json", "--api", a.api(t))
	if err != nil {
		t.Fatal(err)
	}
	var peers []struct {
		PeerID  string   `json:"peer_id"`
		Role    string   `json:"role"`
		State   string   `json:"state"`
		Path    string   `json:"path"`
		Direct  []string `json:"direct_addrs"`
		Relayed []string `json:"relayed_addrs"`
	}
	if err := json.Unmarshal([]byte(out), &peers); err != nil {
		t.Fatalf("peers --json: %v\n%s", err, out)
	}
	found := false
	for _, p := range peers {
		if p.PeerID == bID {
			found = true
			if p.State != "member" || p.Path != "relayed" || p.Role != "private" || len(p.Relayed) == 0 || len(p.Direct) != 0 {
				t.Errorf("a books b as %+v", p)
			}
		}
	}
	if !found {
		t.Fatalf("b %s missing from a's peers: %s", bID, out)
	}
	out, err = overlay(t, "status", "--json", "--api", a.api(t))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Reservations []struct {
			Relay string `json:"relay"`
		} `json:"reservations"`
		Addrs struct {
			Relayed []string `json:"relayed"`
		} `json:"addrs"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Reservations) != 1 || len(st.Addrs.Relayed) == 0 {
		t.Errorf("status --json = %s (err %v), want one reservation and relayed addrs", out, err)
	}
	// The tables people read end with a newline, and status names the
	// relay's state.
	for _, cmd := range []string{"peers", "status"} {
		out, err := overlay(t, cmd, "--api", a.api(t))
		if err != nil || !strings.HasSuffix(out, "\n") {
			t.Errorf("overlay %s = %q, %v; want output ending in a newline", cmd, out, err)
		}
		if cmd == "status" && !strings.Contains(out, "reserved") {
			t.Errorf("overlay status does not show the relay as reserved:\n%s", out)
		}
		if cmd == "peers" && !strings.Contains(out, bID+" is relayed: ws-only") {
			t.Errorf("overlay peers does not say why b is relayed:\n%s", out)
		}
	}
	checkMessaging(t, a.api(t), b.api(t), bID)
	checkTopics(t, a.api(t), b.api(t))
	out, err = overlay(t, "id", "--key", filepath.Join(a.data, "identity.key"))
	if err != nil {
		t.Fatal(err)
	}
	checkCLIEdges(t, a.api(t), b.api(t), strings.TrimSpace(out), bID)
	checkTunnels(t, a.api(t), b.api(t), bID)
	for _, p := range []*proc{a, b, r} {
		p.stop(t)
	}
}

// checkMessaging drives send, inbox, ping and perf between two running peers.
func checkMessaging(t *testing.T, aAPI, bAPI, bID string) {
	out, err := overlay(t, "send", "--api", aAPI, bID, "hello over the overlay")
	if err != nil || !strings.Contains(out, "acknowledged") {
		t.Fatalf("send: %q, %v", out, err)
	}
	out, err = overlay(t, "inbox", "--json", "--api", bAPI)
	if err != nil {
		t.Fatal(err)
	}
	var inbox []struct {
		From string `json:"from"`
		Seq  uint64 `json:"seq"`
		Data string `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &inbox); err != nil || len(inbox) != 1 || inbox[0].Data != "hello over the overlay" || inbox[0].Seq != 1 {
		t.Fatalf("inbox --json = %s (%v)", out, err)
	}
	// A peer nobody knows: a clear reason and a non-zero exit.
	_, err = overlay(t, "send", "--api", aAPI, "--timeout", "10s", "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo", "x")
	if err == nil || !strings.Contains(err.Error(), "unknown peer") {
		t.Errorf("send to unknown peer: %v, want an 'unknown peer' error", err)
	}
	if out, err = overlay(t, "ping", "--api", aAPI, "--count", "2", "--interval", "10ms", bID); err != nil || !strings.Contains(out, "2 answered") {
		t.Errorf("ping: %q, %v", out, err)
	}
	// The same with the flags after the peer, as people write it.
	if out, err = overlay(t, "ping", bID, "--count", "2", "--interval", "10ms", "--api", aAPI); err != nil || !strings.Contains(out, "2 sent, 2 answered") {
		t.Errorf("ping PEER --count 2: %q, %v", out, err)
	}
	if out, err = overlay(t, "perf", "--api", aAPI, "--upload", "1048576", "--download", "1048576", bID); err != nil || !strings.Contains(out, "download: 1048576 bytes") {
		t.Errorf("perf: %q, %v", out, err)
	}
}

// checkTunnels exposes b's own control API as a service, forwards a port of
// a to it, and asks b for its status through that port.
func checkTunnels(t *testing.T, aAPI, bAPI, bID string) {
	if out, err := overlay(t, "expose", "--api", bAPI, "api", bAPI, "--allow", bID); err != nil || !strings.Contains(out, `as "api"`) {
		t.Fatalf("expose: %q, %v", out, err)
	}
	if _, err := overlay(t, "expose", "--api", bAPI, "api", bAPI); err == nil || !strings.Contains(err.Error(), "--replace") {
		t.Fatalf("expose of an exposed name without --replace: %v", err)
	}
	if out, err := overlay(t, "expose", "--api", bAPI, "--replace", "api", bAPI); err != nil || !strings.Contains(out, "replaced") {
		t.Fatalf("expose again with --replace, to every member: %q, %v", out, err)
	}
	// Names a URL path rewrites, ports no connection can use, a name the
	// error must echo as typed.
	for _, bad := range [][]string{{".", bAPI}, {"..", bAPI}, {"x", "127.0.0.1:0"}, {"x", "127.0.0.1:-1"}, {"x", "127.0.0.1:99999"}, {"café", bAPI}} {
		_, err := overlay(t, "expose", "--api", bAPI, bad[0], bad[1])
		if err == nil {
			t.Errorf("expose %s %s accepted", bad[0], bad[1])
		} else if bad[0] == "café" && !strings.Contains(err.Error(), `'é'`) {
			t.Errorf("expose café: %v, want the character echoed as 'é'", err)
		}
	}
	out, err := overlay(t, "forward", "--api", aAPI, "127.0.0.1:0", bID, "api")
	if err != nil {
		t.Fatalf("forward: %v", err)
	}
	var listen string
	if _, err := fmt.Sscanf(out, "forwarding %s to", &listen); err != nil {
		t.Fatalf("forward printed %q", out)
	}
	if out, err := overlay(t, "status", "--api", listen); err != nil || !strings.Contains(out, bID) {
		t.Fatalf("status through the forward: %q, %v", out, err)
	}
	if out, err := overlay(t, "forward", "--list", "--api", aAPI); err != nil || !strings.Contains(out, listen) {
		t.Fatalf("forward --list: %q, %v", out, err)
	}
	if out, err := overlay(t, "expose", "--list", "--api", bAPI); err != nil || !strings.Contains(out, "every member") {
		t.Fatalf("expose --list: %q, %v", out, err)
	}
	if _, err := overlay(t, "forward", "--remove", listen, "--api", aAPI); err != nil {
		t.Fatal(err)
	}
	// A forward on every interface is found by the address it was given.
	out, err = overlay(t, "forward", "--api", aAPI, "0.0.0.0:0", bID, "api")
	if err != nil {
		t.Fatalf("forward 0.0.0.0: %v", err)
	}
	if _, err := fmt.Sscanf(out, "forwarding %s to", &listen); err != nil {
		t.Fatalf("forward printed %q", out)
	}
	_, port, _ := net.SplitHostPort(listen)
	if _, err := overlay(t, "forward", "--remove", "0.0.0.0:"+port, "--api", aAPI); err != nil {
		t.Fatalf("remove the forward bound as %s by 0.0.0.0:%s: %v", listen, port, err)
	}
	if _, err := overlay(t, "expose", "--remove", "api", "--api", bAPI); err != nil {
		t.Fatal(err)
	}
	if _, err := overlay(t, "expose", "--remove", "api", "--api", bAPI); err == nil {
		t.Error("removing a service twice succeeded")
	}
}
