package main_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// overlay version names the module version, the commit and the Go version
// that built it, and status carries the same.
func TestVersion(t *testing.T) {
	out, err := overlay(t, "version", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Version   string `json:"version"`
		Commit    string `json:"commit"`
		GoVersion string `json:"go_version"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.GoVersion != runtime.Version() || v.Version == "" || v.Commit == "" {
		t.Fatalf("version --json = %s (%v), want version, commit and %s", out, err, runtime.Version())
	}
	if out, err = overlay(t, "version"); err != nil || !strings.HasPrefix(out, "overlay "+v.Version+" (commit ") ||
		!strings.Contains(out, runtime.Version()) {
		t.Fatalf("version = %q, %v", out, err)
	}
}

// A relay and a peer each have their own default control API port, so one
// host runs both without flags.
func TestDefaultAPIPortsDiffer(t *testing.T) {
	for cmd, port := range map[string]string{"relay": "127.0.0.1:7400", "peer": "127.0.0.1:7401"} {
		var help strings.Builder
		c := exec.Command(bin, cmd, "--help")
		c.Stdout, c.Stderr = &help, &help
		_ = c.Run()
		if !strings.Contains(help.String(), `(default "`+port+`")`) {
			t.Errorf("overlay %s --help does not show the API default %s:\n%s", cmd, port, help.String())
		}
	}
}

// Settings come from flags, then OVERLAY_* variables, then the config file:
// a running relay shows each layer winning where it should, and its log,
// in JSON as the file asks, is one object per line.
func TestConfigLayersOnARunningNode(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(file, []byte("network: filenet\nmax-reservations: 77\nlog-format: json\nlisten:\n  - /ip4/127.0.0.1/tcp/0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startEnv(t, []string{"OVERLAY_MAX_RESERVATIONS=88", "OVERLAY_NETWORK=envnet", "OVERLAY_CONFIG=" + file},
		filepath.Join(dir, "relay"), "relay", "--network", "flagnet")
	out, err := overlay(t, "status", "--json", "--api", r.api(t))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Network string `json:"network"`
		Addrs   struct {
			Direct []string `json:"direct"`
		} `json:"addrs"`
		Limits struct {
			MaxReservations int `json:"max_reservations"`
		} `json:"limits"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.Network != "flagnet" || st.Limits.MaxReservations != 88 || len(st.Addrs.Direct) != 1 ||
		!strings.HasPrefix(st.Addrs.Direct[0], "/ip4/127.0.0.1/tcp/") {
		t.Errorf("status = %+v; want network from the flag, max-reservations from the environment, listen from the file", st)
	}
	r.stop(t)
	lines := jsonLogLines(t, r)
	if len(lines) == 0 {
		t.Fatalf("no JSON log lines; log-format json from the file not applied:\n%s", r.logs)
	}
}

// jsonLogLines parses the daemon's log, once it has stopped: stdout lines
// (its addresses) aside, every line must be one JSON object.
func jsonLogLines(t *testing.T, p *proc) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(p.logs.String(), "\n") {
		if l == "" || strings.HasPrefix(l, "peer ID: ") || strings.HasPrefix(l, "/") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("log line is not JSON: %q", l)
			continue
		}
		out = append(out, m)
	}
	return out
}

// config check prints each setting with its source, and refuses a file
// with an unknown key or a bad value, naming the key and the line.
func TestConfigCheck(t *testing.T) {
	example := "../../deploy/overlay.example.yaml"
	out, err := overlay(t, "config", "check", example)
	if err != nil {
		t.Fatalf("the example config does not check: %v", err)
	}
	for _, want := range []string{"overlay relay with " + example, "file " + example + ":11", "mynet", "default"} {
		if !strings.Contains(out, want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("relay: [/dns4/r/tcp/4101/ws/p2p/12D3KooWGZ8GccZ9RTv9kUK6Vomd1qshVswsH2AoHqgfNx97zUPh]\nmax-reservations: 5\nretry-max: soon\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = overlay(t, "config", "check", bad)
	var ee *exec.ExitError
	if err == nil || !strings.Contains(err.Error(), bad+`:2: unknown key "max-reservations"`) ||
		!strings.Contains(err.Error(), bad+`:3: key "retry-max": invalid value "soon"`) {
		t.Fatalf("config check of a bad peer file: %v; want both mistakes with file and line", err)
	}
	if !errorsAs(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("config check of a bad file exited %v, want 1", err)
	}
}

// With --log-format json, the lines about a peer carry its peer ID: a peer
// joining, a reservation, as seen by both sides.
func TestJSONLogsCarryPeerIDs(t *testing.T) {
	dir := t.TempDir()
	r := start(t, filepath.Join(dir, "relay"), "relay", "--log-format", "json",
		"--listen", "/ip4/127.0.0.1/tcp/0/ws", "--addr-file", filepath.Join(dir, "relay.addrs"))
	ws := strings.TrimSpace(waitFile(t, filepath.Join(dir, "relay.addrs")))
	a := start(t, filepath.Join(dir, "a"), "peer", "--log-format", "json", "--relay", ws, "--ws-only")
	eventually(t, 20*time.Second, "peer healthy", func() error {
		_, err := overlay(t, "health", "--api", a.api(t))
		return err
	})
	a.stop(t)
	r.stop(t)
	about := map[string]string{"peer joined": "peer", "reserved on relay": "relay"}
	seen := map[string]bool{}
	for _, p := range []*proc{r, a} {
		for _, l := range jsonLogLines(t, p) {
			msg, _ := l["msg"].(string)
			key, ok := about[msg]
			if !ok {
				continue
			}
			seen[msg] = true
			id, _ := l[key].(string)
			if _, err := peer.Decode(id); err != nil {
				t.Errorf("log line %v: %q is not a peer ID", l, key)
			}
		}
	}
	for msg := range about {
		if !seen[msg] {
			t.Errorf("no %q line in the JSON logs", msg)
		}
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// The daemon serves Prometheus metrics on its control API and, with
// --metrics, on an address of their own: Go's, libp2p's and the overlay's.
func TestDaemonMetrics(t *testing.T) {
	dir := t.TempDir()
	r := start(t, filepath.Join(dir, "relay"), "relay", "--listen", "/ip4/127.0.0.1/tcp/0",
		"--metrics", "127.0.0.1:0")
	body := func(url string) string {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	m := body("http://" + r.api(t) + "/metrics")
	for _, want := range []string{"go_goroutines ", "process_resident_memory_bytes ", "libp2p_rcmgr_", "overlay_reservations_held 0", "overlay_relay_service_reservations 0"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics on the API lacks %q", want)
		}
	}
	var addr string
	eventually(t, 10*time.Second, "metrics address logged", func() error {
		for _, l := range strings.Split(r.logsSoFar(), "\n") {
			if strings.Contains(l, "metrics listening") {
				addr = strings.TrimPrefix(regexp.MustCompile(`addr=\S+`).FindString(l), "addr=")
				return nil
			}
		}
		return errors.New("not yet")
	})
	if m := body("http://" + addr + "/metrics"); !strings.Contains(m, "overlay_relay_service_reservations 0") {
		t.Errorf("--metrics %s does not serve the overlay's metrics", addr)
	}
}
