package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `overlay config check` loads the certificate-mode files a YAML file
// names, and refuses what a node would refuse at start.
func TestConfigCheckCertMode(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	if out, code := run(t, "ca", "init", ca); code != 0 {
		t.Fatalf("ca init: %s", out)
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	out, code := run(t, "id", "--key", filepath.Join(data, "identity.key"))
	if code != 0 {
		t.Fatalf("id: %s", out)
	}
	id := strings.TrimSpace(out)
	certFile := filepath.Join(dir, "node.cert")
	if out, code := run(t, "ca", "sign", "--ca", ca, "--peer", id, "--name", "relay1", "--out", certFile); code != 0 {
		t.Fatalf("ca sign: %s", out)
	}
	other := filepath.Join(dir, "other.cert")
	if out, code := run(t, "ca", "sign", "--ca", ca, "--peer", "12D3KooWGZ8GccZ9RTv9kUK6Vomd1qshVswsH2AoHqgfNx97zUPh",
		"--name", "other", "--out", other); code != 0 {
		t.Fatalf("ca sign: %s", out)
	}
	netKey := filepath.Join(dir, "net.key")
	if err := os.WriteFile(netKey, []byte("0123456789abcdef0123"), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(yaml string) (int, string) {
		f := filepath.Join(dir, "overlay.yaml")
		if err := os.WriteFile(f, []byte("data: "+data+"\nca-pub: "+filepath.Join(ca, "ca.pub")+"\n"+yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return runEnv(t, nil, "config", "check", f, "--role", "relay")
	}
	if code, out := check("cert: " + certFile + "\ncert-warn: 24h\n"); code != 0 || !strings.Contains(out, certFile) {
		t.Errorf("valid certificate mode: exit %d:\n%s", code, out)
	}
	for _, c := range []struct{ yaml, want string }{
		{"cert: " + other + "\n", "certificate peer ID mismatch"},
		{"cert: " + filepath.Join(ca, "ca.pub") + "\n", "malformed"},
		{"", "needs this node's certificate (--cert FILE)"},
		{"cert: " + certFile + "\nnetwork-key: " + netKey + "\n", "not both"},
		{"cert: " + certFile + "\nrevocations: " + certFile + "\n", "not a revocation list"},
	} {
		if code, out := check(c.yaml); code != 1 || !strings.Contains(out, c.want) {
			t.Errorf("%q: exit %d:\n%s\nwant exit 1 saying %q", c.yaml, code, out, c.want)
		}
	}
}
