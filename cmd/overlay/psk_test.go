package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// 'overlay psk new' writes a swarm key once and refuses to overwrite it; a
// relay given it and an explicit QUIC address refuses to start, naming QUIC.
func TestPSKCommand(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "swarm.key")
	if out, err := exec.Command(bin, "psk", "new", key).CombinedOutput(); err != nil {
		t.Fatalf("psk new: %v\n%s", err, out)
	}
	b, err := os.ReadFile(key)
	if err != nil || !strings.HasPrefix(string(b), "/key/swarm/psk/1.0.0/\n/base16/\n") {
		t.Fatalf("key file %q, %v; want a swarm key", b, err)
	}
	out, err := exec.Command(bin, "psk", "new", key).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not overwriting") {
		t.Fatalf("second psk new: %v\n%s; want a refusal", err, out)
	}
	out, err = exec.Command(bin, "relay", "--psk", key, "--data", dir, "--api", "off",
		"--listen", "/ip4/127.0.0.1/udp/0/quic-v1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cannot use QUIC") {
		t.Fatalf("relay with --psk and QUIC: %v\n%s; want a QUIC error", err, out)
	}
}
