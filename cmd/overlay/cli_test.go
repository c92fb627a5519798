package main_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runEnv runs the binary with env added to the test's environment and
// returns its exit code and its output (stdout and stderr).
func runEnv(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String()
		}
		return 0, out.String()
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("overlay %v did not exit within 30s:\n%s", args, out.String())
		return 0, ""
	}
}

// An unknown command names the nearest one and exits 2.
func TestUnknownCommandSuggests(t *testing.T) {
	code, out := runEnv(t, nil, "peeers")
	if code != 2 || !strings.Contains(out, `unknown command "peeers"`) || !strings.Contains(out, "did you mean 'peers'?") {
		t.Errorf("overlay peeers: exit %d:\n%s\nwant exit 2 and a suggestion of peers", code, out)
	}
	if code, out := runEnv(t, nil, "help", "pign"); code != 2 || !strings.Contains(out, "did you mean 'ping'?") {
		t.Errorf("overlay help pign: exit %d:\n%s\nwant exit 2 and a suggestion of ping", code, out)
	}
	if code, out := runEnv(t, nil, "ping", "PEER", "--cuont", "2"); code != 2 || !strings.HasSuffix(out, "did you mean --count?\n") {
		t.Errorf("overlay ping PEER --cuont 2: exit %d:\n%s\nwant exit 2 and a suggestion of --count", code, out)
	}
	if code, out := runEnv(t, nil, "help", "ping"); code != 0 || !strings.Contains(out, "usage: overlay ping") {
		t.Errorf("overlay help ping: exit %d:\n%s\nwant ping's usage", code, out)
	}
}

// Flags after the positional arguments are read as flags, not taken for
// arguments (which printed the usage).
func TestFlagsAfterArguments(t *testing.T) {
	code, out := runEnv(t, nil, "ping", "12D3KooWGZ8GccZ9RTv9kUK6Vomd1qshVswsH2AoHqgfNx97zUPh", "--count", "2", "--api", "127.0.0.1:1")
	if code != 1 || !strings.Contains(out, "127.0.0.1:1") || strings.Contains(out, "usage:") {
		t.Errorf("overlay ping PEER --count 2 --api 127.0.0.1:1: exit %d:\n%s\nwant it to try the API given after the peer", code, out)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	if code, out := runEnv(t, nil, "psk", "new", key, "--help"); code != 0 || !strings.Contains(out, "usage: overlay psk new FILE") {
		t.Errorf("overlay psk new FILE --help: exit %d:\n%s", code, out)
	}
	if code, out := runEnv(t, nil, "config", "check", "../../deploy/overlay.example.yaml", "--role", "relay"); code != 0 ||
		!strings.Contains(out, "overlay relay with") {
		t.Errorf("overlay config check FILE --role relay: exit %d:\n%s", code, out)
	}
}

// The bash script completes commands, first words and each command's
// flags; the zsh script carries the same.
func TestCompletion(t *testing.T) {
	script, err := overlay(t, "completion", "bash")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "overlay.bash")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) string {
		t.Helper()
		var sh strings.Builder
		sh.WriteString("source " + f + "\nCOMP_WORDS=(")
		for _, w := range words {
			sh.WriteString("'" + w + "' ")
		}
		sh.WriteString(")\nCOMP_CWORD=" + string(rune('0'+len(words)-1)) + "\n_overlay\necho \"${COMPREPLY[*]}\"\n")
		out, err := exec.Command("bash", "--norc", "-c", sh.String()).CombinedOutput()
		if err != nil {
			t.Fatalf("bash completion of %q: %v\n%s", words, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"overlay", "pe"}, "peer peers perf"},
		{[]string{"overlay", "ping", "PEER", "--co"}, "--count"},
		{[]string{"overlay", "relay", "--max-res"}, "--max-reservations --max-reservations-per-ip"},
		{[]string{"overlay", "config", "c"}, "check"},
		{[]string{"overlay", "completion", ""}, "bash zsh"},
	} {
		if got := complete(c.words...); got != c.want {
			t.Errorf("completion of %q = %q, want %q", c.words, got, c.want)
		}
	}
	zsh, err := overlay(t, "completion", "zsh")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#compdef overlay", "'ping:", "'--count[pings to send]:count:_files'", "'--json[print JSON for programs]'", "(check)"} {
		if !strings.Contains(zsh, want) {
			t.Errorf("zsh completion lacks %q", want)
		}
	}
	if _, err := exec.LookPath("zsh"); err == nil {
		zf := filepath.Join(t.TempDir(), "_overlay")
		os.WriteFile(zf, []byte(zsh), 0o644)
		if out, err := exec.Command("zsh", "-n", zf).CombinedOutput(); err != nil {
			t.Errorf("zsh -n: %v\n%s", err, out)
		}
	}
	if code, out := runEnv(t, nil, "completion", "fish"); code != 2 || !strings.Contains(out, `no script for "fish"`) {
		t.Errorf("completion fish: exit %d:\n%s", code, out)
	}
}

// goName matches the Go field names the node's checks used to name.
var goName = regexp.MustCompile(`MaxReservations|MaxCircuits|ReservationTTL|BufferSize|StrangerGrace|MaxPeers|StrangerTTL`)

// config check runs the checks the node runs: each bad value fails it with
// the file, line and key (or the variable), and the node refuses to start
// with the same words, before its API listens.
func TestConfigCheckRunsTheNodesChecks(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ line, key, want string }{
		{"log-level: bogus", "log-level", `log level "bogus"`},
		{"max-reservations: -5", "max-reservations", "max reservations must be positive, not -5"},
		{"max-circuits: -3", "max-circuits", "max circuits per peer must be positive, not -3"},
		{"reservation-ttl: -1h", "reservation-ttl", "reservation TTL must be at least 1s"},
		{"relay-buffer: -1", "relay-buffer", "copy buffer must be at least 512 bytes, not -1"},
		{"max-book: -1", "max-book", "max peers must be positive, not -1"},
		{"stranger-grace: -5s", "stranger-grace", "stranger grace must not be negative"},
		{"api: 0.0.0.0:7400", "api", "API address 0.0.0.0:7400 is not loopback"},
		{"relay-acl: allowlist", "relay-acl", "allowlist ACL needs peer IDs"},
		{"network: !!binary aGVsbG8=", "network", "YAML tags (!!binary) are not supported"},
		{"network: !!str foo", "network", "YAML tags (!!str) are not supported"},
		{"network: &a foo", "network", "YAML anchors (&a) are not supported"},
		{"log-level: *a", "log-level", "YAML aliases (*a) are not supported"},
		{"tls-ca: /nonexistent/ca.pem", "tls-ca", "tls ca: open /nonexistent/ca.pem"},
	}
	for i, c := range cases {
		file := filepath.Join(dir, c.key+".yaml")
		os.WriteFile(file, []byte("listen: [/ip4/127.0.0.1/tcp/0]\nno-dht: true\n"+c.line+"\n"), 0o644)
		where := file + `:3: key "` + c.key + `"`
		code, out := runEnv(t, nil, "config", "check", file)
		if code != 1 || !strings.Contains(out, where) || !strings.Contains(out, c.want) || goName.MatchString(out) {
			t.Errorf("config check of %q: exit %d:\n%s\nwant exit 1, %s and %q", c.line, code, out, where, c.want)
		}
		code, out = runEnv(t, nil, "relay", "--config", file, "--data", filepath.Join(dir, "d"+string(rune('a'+i))))
		if code != 1 || !strings.Contains(out, where) || !strings.Contains(out, c.want) || strings.Contains(out, "control API listening") {
			t.Errorf("relay with %q: exit %d:\n%s\nwant exit 1 with %s and %q, before the API listens", c.line, code, out, where, c.want)
		}
	}

	ok := filepath.Join(dir, "ok.yaml")
	os.WriteFile(ok, []byte("listen: [/ip4/127.0.0.1/tcp/0]\nno-dht: true\n"), 0o644)
	for _, env := range []struct{ v, want string }{
		{"OVERLAY_MAX_RESERVATIONS=-5", "OVERLAY_MAX_RESERVATIONS: relay: max reservations must be positive, not -5"},
		{"OVERLAY_MAX_RESERVATION=5", "OVERLAY_MAX_RESERVATION is no setting of any overlay command (did you mean OVERLAY_MAX_RESERVATIONS?)"},
	} {
		code, out := runEnv(t, []string{env.v}, "config", "check", ok)
		if code != 1 || !strings.Contains(out, env.want) {
			t.Errorf("config check with %s: exit %d:\n%s\nwant exit 1 and %q", env.v, code, out, env.want)
		}
		code, out = runEnv(t, []string{env.v}, "relay", "--config", ok, "--data", filepath.Join(dir, "env"))
		if code != 1 || !strings.Contains(out, env.want) || strings.Contains(out, "control API listening") {
			t.Errorf("relay with %s: exit %d:\n%s\nwant exit 1 and %q", env.v, code, out, env.want)
		}
	}
	code, out := runEnv(t, nil, "relay", "--config", ok, "--max-circuits", "-3", "--data", filepath.Join(dir, "flag"))
	if code != 1 || !strings.Contains(out, "--max-circuits: relay: max circuits per peer must be positive, not -3") {
		t.Errorf("relay --max-circuits -3: exit %d:\n%s", code, out)
	}

	// A failure that two settings make names both, and only them.
	peer := filepath.Join(dir, "peer.yaml")
	os.WriteFile(peer, []byte("relay: [/ip4/127.0.0.1/tcp/1/ws/p2p/12D3KooWGZ8GccZ9RTv9kUK6Vomd1qshVswsH2AoHqgfNx97zUPh]\n"+
		"ws-only: true\nlisten: [/ip4/127.0.0.1/tcp/0]\nretry-max: -1s\n"), 0o644)
	code, out = runEnv(t, nil, "config", "check", peer)
	if code != 1 || !strings.Contains(out, peer+`:3: key "listen", `+peer+`:2: key "ws-only": WebSocket only`) ||
		!strings.Contains(out, peer+`:4: key "retry-max": keeper: longest retry wait -1s`) || strings.Contains(out, `key "relay"`) {
		t.Errorf("config check of a peer file with ws-only, listen and retry-max: exit %d:\n%s", code, out)
	}
}

// SIGHUP stops a node the way SIGTERM does: the "shutting down" line, the
// peer book saved, exit 0 (it used to kill the process, exit 129).
func TestSIGHUPStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	r := start(t, filepath.Join(dir, "relay"), "relay", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-dht")
	r.api(t)
	r.cmd.Process.Signal(syscall.SIGHUP)
	select {
	case err := <-r.done:
		r.done <- err // for Cleanup
		if err != nil {
			t.Fatalf("relay exited with %v after SIGHUP, want exit 0:\n%s", err, r.logsSoFar())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("relay did not exit within 15s of SIGHUP")
	}
	if logs := r.logsSoFar(); !strings.Contains(logs, "shutting down") || !strings.Contains(logs, "signal=hangup") {
		t.Errorf("relay logs lack the shutdown line naming the signal:\n%s", logs)
	}
	if _, err := os.Stat(filepath.Join(r.data, "peers.json")); err != nil {
		t.Errorf("peer book not saved at SIGHUP: %v", err)
	}
}
