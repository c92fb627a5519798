package main_test

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A relay told to listen on a port already taken, besides a free one,
// does not start: it names the address and the bind error. Before, it ran
// on the free address alone and said nothing (issue 22).
func TestRelayRefusesTakenListenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", taken.Addr().(*net.TCPAddr).Port)
	for i, listen := range [][]string{{busy, "/ip4/127.0.0.1/tcp/0"}, {"/ip4/127.0.0.1/tcp/0", busy + "/ws"}} {
		args := []string{"relay", "--data", filepath.Join(t.TempDir(), fmt.Sprint(i)), "--no-dht", "--api", "off"}
		for _, l := range listen {
			args = append(args, "--listen", l)
		}
		code, out := runEnv(t, nil, args...)
		if code != 1 || !strings.Contains(out, "listen on "+busy) || !strings.Contains(out, "address already in use") {
			t.Errorf("overlay %v: exit %d; want 1 naming %s and the bind error:\n%s", args, code, busy, out)
		}
	}
}

// With --listen-best-effort the relay starts on what binds, and says what
// did not: a WARN line naming the address, and overlay health.
func TestRelayListenBestEffort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/ws", taken.Addr().(*net.TCPAddr).Port)
	r := start(t, filepath.Join(t.TempDir(), "relay"), "relay", "--listen-best-effort",
		"--listen", "/ip4/127.0.0.1/tcp/0", "--listen", busy)
	api := r.api(t)
	if logs := r.logsSoFar(); !strings.Contains(logs, "WARN") || !strings.Contains(logs, busy) {
		t.Errorf("no WARN line naming %s:\n%s", busy, logs)
	}
	var errb strings.Builder
	cmd := exec.Command(bin, "health", "--api", api)
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil || !strings.Contains(errb.String(), busy) {
		t.Errorf("overlay health: %v; stderr %q, want a warning naming %s", err, errb.String(), busy)
	}
	r.stop(t)
}
