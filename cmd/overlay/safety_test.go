package main_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// checkCLIEdges drives send --stdin at and over the message maximum, and a
// send to the node itself; b's inbox holds len(before) messages already.
func checkCLIEdges(t *testing.T, aAPI, bAPI, aID, bID string) {
	const max = 1 << 20
	in := "first\n" + strings.Repeat("x", max) + "\n" + strings.Repeat("y", max+1) + "\nafter"
	cmd := exec.Command(bin, "send", "--api", aAPI, "--stdin", bID)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stderr = strings.NewReader(in), &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("send --stdin with a line over the maximum: %v, want exit 1", err)
	}
	if !strings.Contains(stderr.String(), "line 3: longer than the message maximum of 1048576 bytes") ||
		strings.Contains(stderr.String(), "line 2") || strings.Contains(stderr.String(), "line 4") {
		t.Errorf("send --stdin stderr = %q; want line 3 (only) reported as too long", stderr.String())
	}
	out, err := overlay(t, "inbox", "--json", "--api", bAPI)
	if err != nil {
		t.Fatal(err)
	}
	var inbox []struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &inbox); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range inbox {
		got = append(got, m.Data)
	}
	if n := len(got); n < 3 || got[n-3] != "first" || got[n-2] != strings.Repeat("x", max) || got[n-1] != "after" {
		t.Errorf("b's inbox ends with %d messages, want first, the 1 MiB line, after (the line over the maximum dropped, the one after it sent)", len(got))
	}

	_, err = overlay(t, "send", "--api", aAPI, "--timeout", "5s", aID, "to myself")
	if err == nil || !strings.Contains(err.Error(), "cannot send to this node itself") {
		t.Errorf("send to self: %v, want 'cannot send to this node itself'", err)
	}
}

// Problems with the data directory, the key or the API address stop the
// start with an error naming the cause, before the control API listens.
func TestDaemonRefusesBadStart(t *testing.T) {
	dir := t.TempDir()
	relay := func(data string, extra ...string) []string {
		return append([]string{"relay", "--data", data, "--listen", "/ip4/127.0.0.1/tcp/0", "--no-dht"}, extra...)
	}
	check := func(what string, args []string, want ...string) {
		t.Helper()
		code, out := runEnv(t, nil, args...)
		if code != 1 || strings.Contains(out, "control API listening") {
			t.Errorf("%s: exit %d; want 1 before the API listens:\n%s", what, code, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output does not say %q:\n%s", what, w, out)
			}
		}
	}

	check("API on every interface, no token", relay(filepath.Join(dir, "open"), "--api", "0.0.0.0:0"),
		"--api: API address 0.0.0.0:0 is not loopback", "--api-token FILE")

	short := filepath.Join(dir, "short.token")
	os.WriteFile(short, []byte("tooshort\n"), 0o600)
	check("token too short", relay(filepath.Join(dir, "short"), "--api", "0.0.0.0:0", "--api-token", short), "at least 16")

	keyDir := filepath.Join(dir, "key")
	if _, err := overlay(t, "id", "--key", filepath.Join(keyDir, "identity.key")); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(keyDir, "identity.key")
	b, _ := os.ReadFile(key)
	b[len(b)-5] ^= 0x01
	os.WriteFile(key, b, 0o600)
	check("a flipped byte in identity.key", relay(keyDir, "--api", "127.0.0.1:0"), key, "damaged", "move it aside")

	ro := filepath.Join(dir, "readonly")
	os.Mkdir(ro, 0o500)
	if os.Geteuid() == 0 {
		// Root writes through mode bits; /proc refuses new files to all.
		ro = "/proc/self"
	}
	check("read-only data directory", relay(ro, "--api", "127.0.0.1:0"), "not writable", "--data")

	fifoDir := filepath.Join(dir, "fifo")
	os.Mkdir(fifoDir, 0o700)
	if err := syscall.Mkfifo(filepath.Join(fifoDir, "peers.json"), 0o600); err == nil {
		check("a FIFO as the peer book", relay(fifoDir, "--api", "127.0.0.1:0"), "peers.json", "regular file")
	}
}

// With --api-token the API may listen beyond loopback: the daemon warns,
// requests without the token are refused, and the commands send it from
// --api-token or $OVERLAY_API_TOKEN.
func TestDaemonAPIToken(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "api.token")
	os.WriteFile(tok, []byte("c2VjcmV0LXRva2VuLW9mLTMyLWJ5dGVzLi4uLi4=\n"), 0o600)
	p := start(t, filepath.Join(dir, "relay"), "relay", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-dht",
		"--api-token", tok, "--api", "0.0.0.0:0")
	_, port, err := net.SplitHostPort(p.api(t))
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + port
	eventually(t, 10*time.Second, "warning logged", func() error {
		if !strings.Contains(p.logsSoFar(), "control API reachable from other hosts") {
			return errors.New("no warning in the log")
		}
		return nil
	})
	if _, err := overlay(t, "status", "--api", addr); err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("status without token: %v, want a refusal naming the token", err)
	}
	if _, err := overlay(t, "health", "--api", addr, "--api-token", tok); err != nil {
		t.Errorf("health with --api-token: %v", err)
	}
	cmd := exec.Command(bin, "health", "--api", addr)
	cmd.Env = append(os.Environ(), "OVERLAY_API_TOKEN="+tok)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("health with $OVERLAY_API_TOKEN: %v: %s", err, out)
	}
	p.stop(t)
}

// One invalid entry in peers.json costs only itself: the daemon starts,
// keeps the valid entry, says what it skipped and moves nothing aside.
func TestDaemonSkipsInvalidBookEntry(t *testing.T) {
	data := filepath.Join(t.TempDir(), "relay")
	os.MkdirAll(data, 0o700)
	const good = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
	now := time.Now().UTC().Format(time.RFC3339Nano)
	book := `{"version":1,"saved":"` + now + `","peers":[` +
		`{"peer_id":"` + good + `","state":"member","direct_addrs":["/ip4/192.0.2.1/tcp/1"],"first_seen":"` + now + `","last_seen":"` + now + `"},` +
		`{"peer_id":"x","state":"befriended"}]}`
	os.WriteFile(filepath.Join(data, "peers.json"), []byte(book), 0o600)
	p := start(t, data, "relay", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-dht")
	out, err := overlay(t, "peers", "--json", "--api", p.api(t))
	if err != nil || !strings.Contains(out, good) {
		t.Fatalf("peers = %s, %v; want the valid entry kept", out, err)
	}
	if !strings.Contains(p.logsSoFar(), "skipped") {
		t.Errorf("no log line about the skipped entry:\n%s", p.logsSoFar())
	}
	if aside, _ := filepath.Glob(filepath.Join(data, "peers.json.corrupt-*")); len(aside) > 0 {
		t.Errorf("book moved aside for one bad entry: %v", aside)
	}
	p.stop(t)
}
