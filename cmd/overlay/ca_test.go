package main_test

import (
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// run runs the binary and returns its combined output and exit code.
func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err == nil {
		return string(out), 0
	}
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("run %v: %v", args, err)
	}
	return string(out), ee.ExitCode()
}

// must runs the binary and fails the test unless it exits 0 with every
// string of want in its output.
func must(t *testing.T, want []string, args ...string) string {
	t.Helper()
	out, code := run(t, args...)
	if code != 0 {
		t.Fatalf("overlay %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("overlay %s: no %q in\n%s", strings.Join(args, " "), w, out)
		}
	}
	return out
}

// refused runs the binary and fails the test unless it exits with code and
// its output holds want.
func refused(t *testing.T, code int, want string, args ...string) {
	t.Helper()
	out, got := run(t, args...)
	if got != code || !strings.Contains(out, want) {
		t.Fatalf("overlay %s: exit %d, want %d with %q\n%s", strings.Join(args, " "), got, code, want, out)
	}
}

// 'overlay ca' end to end on the built binary: a CA, a certificate for a
// real node identity, a revocation by peer and by serial, a policy, and
// show checking each against the CA's public key.
func TestCACommands(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	pub := filepath.Join(ca, "ca.pub")

	must(t, []string{"CA public key: ", "fingerprint:", "keep it offline"}, "ca", "init", ca)
	fi, err := os.Stat(filepath.Join(ca, "ca.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key: %v, mode %v; want 0600", err, fi.Mode())
	}
	refused(t, 1, "not overwriting", "ca", "init", ca)

	id := strings.TrimSpace(must(t, nil, "id", "--key", filepath.Join(dir, "node.key")))
	crt := filepath.Join(dir, "laptop.crt")
	must(t, []string{`signed "laptop"`, "wrote " + crt}, "ca", "sign", "--ca", ca, "--peer", id,
		"--name", "laptop", "--groups", "ops,dev,ops", "--expires", "2h", "--ipv4", "100.64.0.9", "--out", crt)
	out := must(t, []string{"certificate", "name:        laptop", "peer:        " + id, "groups:      dev, ops",
		"ipv4:        100.64.0.9", "expires in 2h", "check:       valid"}, "ca", "show", "--ca-pub", pub, crt)
	serial := regexp.MustCompile(`serial:\s+([0-9a-f]{32})`).FindStringSubmatch(out)
	if serial == nil {
		t.Fatalf("no serial in\n%s", out)
	}
	must(t, []string{"not checked"}, "ca", "show", crt)
	must(t, []string{"check:       valid"}, "ca", "show", crt, "--ca-pub", pub) // flags after arguments
	// To stdout, PEM.
	if out := must(t, nil, "ca", "sign", "--ca", ca, "--peer", id, "--name", "x"); !strings.Contains(out, "-----BEGIN OVERLAY CERTIFICATE-----") {
		t.Fatalf("sign to stdout:\n%s", out)
	}

	// Refusals: bad input, another CA, a tampered certificate.
	refused(t, 1, "--name", "ca", "sign", "--ca", ca, "--peer", id, "--name", "Laptop")
	refused(t, 1, "--groups", "ca", "sign", "--ca", ca, "--peer", id, "--name", "a", "--groups", "a_b")
	refused(t, 1, "not a peer ID", "ca", "sign", "--ca", ca, "--peer", "nobody", "--name", "a")
	refused(t, 1, "not in the overlay range", "ca", "sign", "--ca", ca, "--peer", id, "--name", "a", "--ipv4", "10.0.0.1")
	refused(t, 2, "usage: overlay ca sign", "ca", "sign", "--ca", ca, "--name", "a")
	refused(t, 1, "--ca DIR is required", "ca", "sign", "--peer", id, "--name", "a")
	refused(t, 2, "unknown command", "ca", "frobnicate")
	other := filepath.Join(dir, "other")
	must(t, nil, "ca", "init", other)
	refused(t, 1, "FAILED (cert-unknown-ca)", "ca", "show", "--ca-pub", filepath.Join(other, "ca.pub"), crt)
	p, _ := os.ReadFile(crt)
	blk, _ := pem.Decode(p)
	blk.Bytes[len(blk.Bytes)/2] ^= 1
	bad := filepath.Join(dir, "bad.crt")
	if err := os.WriteFile(bad, pem.EncodeToMemory(blk), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := run(t, "ca", "show", "--ca-pub", pub, bad); code != 1 {
		t.Fatalf("tampered certificate: exit %d\n%s", code, out)
	}

	// Revocations: by peer, by serial, twice; each a new version.
	rl := filepath.Join(ca, "revocations.pem")
	must(t, []string{"version 1: 0 serials, 1 peers"}, "ca", "revoke", "--ca", ca, id)
	must(t, []string{"version 2: 1 serials, 1 peers"}, "ca", "revoke", "--ca", ca, serial[1])
	must(t, []string{"already revoked in version 2"}, "ca", "revoke", "--ca", ca, id)
	refused(t, 1, "neither a serial", "ca", "revoke", "--ca", ca, "xyz")
	must(t, []string{"revocation list", "version:     2", "  " + serial[1], "  " + id, "check:       valid"},
		"ca", "show", "--ca-pub", pub, rl)

	// A damaged held list is refused, not silently replaced.
	held, _ := os.ReadFile(rl)
	blk, _ = pem.Decode(held)
	blk.Bytes[20] ^= 1
	os.WriteFile(rl, pem.EncodeToMemory(blk), 0o644)
	refused(t, 1, "revocations.pem", "ca", "revoke", "--ca", ca, serial[1][:31]+"0")
	os.WriteFile(rl, held, 0o644)
	must(t, []string{"CA public key", "fingerprint:"}, "ca", "show", pub)

	// Policy: signed from a JSON source, versioned.
	src := filepath.Join(dir, "policy.json")
	// The example of 'ca policy --help'.
	example := regexp.MustCompile(`(?s)\n  (\{.*\})\n\n`).FindStringSubmatch(must(t, nil, "ca", "policy", "--help"))
	if example == nil {
		t.Fatal("no example in ca policy --help")
	}
	os.WriteFile(src, []byte(example[1]), 0o644)
	must(t, []string{"signed policy version 1 (1 rules, default allow)"}, "ca", "policy", "--ca", ca, src)
	must(t, []string{"signed policy version 2"}, "ca", "policy", "--ca", ca, src)
	must(t, []string{"policy", "version:     2", "ops-ssh: allow from group:ops to *: messages; services ssh; ports tcp/22,udp/6000-6100,icmp", "check:       valid"},
		"ca", "show", "--ca-pub", pub, filepath.Join(ca, "policy.pem"))
	os.WriteFile(src, []byte(`{"rules":[{"name":"r","action":"allow","from":["group:Ops"],"to":["*"],"messages":true}]}`), 0o644)
	refused(t, 1, "group:Ops", "ca", "policy", "--ca", ca, src)

	// Help tells the truth and exits 0.
	must(t, []string{"usage: overlay ca COMMAND", "ca revoke --ca DIR PEER-ID|SERIAL"}, "ca", "--help")
	must(t, []string{"usage: overlay ca sign", "-expires", "-groups"}, "ca", "sign", "--help")
}
