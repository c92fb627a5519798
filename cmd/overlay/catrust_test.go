package main_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// 'overlay ca publish' on the built binaries: a revocation published at a
// peer reaches the relay and the other peer; the revoked peer is cut off;
// publishing the same list again and a damaged one are refused.
func TestCAPublishSpreads(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	must(t, []string{"CA public key"}, "ca", "init", ca)
	pub := filepath.Join(ca, "ca.pub")
	r := start(t, filepath.Join(dir, "relay"), "relay", "--ca-pub", pub, "--no-dht",
		"--listen", "/ip4/127.0.0.1/tcp/0/ws", "--addr-file", filepath.Join(dir, "relay.addrs"))
	ws := strings.Fields(waitFile(t, filepath.Join(dir, "relay.addrs")))[0]
	a := start(t, filepath.Join(dir, "a"), "peer", "--ca-pub", pub, "--no-dht", "--relay", ws, "--ws-only")
	b := start(t, filepath.Join(dir, "b"), "peer", "--ca-pub", pub, "--no-dht", "--relay", ws, "--ws-only")
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
	must(t, []string{"revoked " + bID}, "ca", "revoke", "--ca", ca, bID)
	list := filepath.Join(ca, "revocations.pem")
	if out, err = overlay(t, "ca", "publish", "--api", a.api(t), list); err != nil || !strings.Contains(out, "published revocation list version 1") {
		t.Fatalf("ca publish: %q, %v", out, err)
	}
	eventually(t, 10*time.Second, "the relay holds the list", func() error {
		out, err := overlay(t, "ca", "status", "--api", r.api(t))
		if err == nil && !strings.Contains(out, "version 1 (1 peers") {
			err = errString(out)
		}
		return err
	})
	eventually(t, 10*time.Second, "the relay cut the revoked peer off", func() error {
		out, err := overlay(t, "ca", "status", "--api", r.api(t))
		if err == nil && strings.Contains(out, "revoked cut off: 0") {
			err = errString(out)
		}
		return err
	})
	if _, err := overlay(t, "ca", "publish", "--api", a.api(t), list); err == nil || !strings.Contains(err.Error(), "not newer") {
		t.Fatalf("publishing the same list again: %v, want refused as not newer", err)
	}
	// A forged copy: another CA's list of the next version.
	other := filepath.Join(dir, "other")
	must(t, nil, "ca", "init", other)
	must(t, nil, "ca", "revoke", "--ca", other, bID)
	must(t, nil, "ca", "revoke", "--ca", other, strings.Repeat("ab", 16))
	if _, err := overlay(t, "ca", "publish", "--api", a.api(t), filepath.Join(other, "revocations.pem")); err == nil ||
		!strings.Contains(err.Error(), "cert-unknown-ca") {
		t.Fatalf("publishing another CA's list: %v, want refused (cert-unknown-ca)", err)
	}
	out, err = overlay(t, "ca", "status", "--api", a.api(t))
	if err != nil || !strings.Contains(out, "unknown-ca     1") || !strings.Contains(out, "stale          1") {
		t.Fatalf("ca status on a: %q, %v", out, err)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
