package identity_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/overlay-net/overlay/node/identity"
)

func TestPSKFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "swarm.key")
	if err := identity.WritePSK(path); err != nil {
		t.Fatal(err)
	}
	psk, err := identity.ReadPSK(path)
	if err != nil || len(psk) != 32 {
		t.Fatalf("ReadPSK = %d bytes, %v; want 32, nil", len(psk), err)
	}
	if err := identity.WritePSK(path); err == nil || !strings.Contains(err.Error(), "not overwriting") {
		t.Fatalf("second WritePSK = %v, want a refusal to overwrite", err)
	}
	// ipfs-swarm-key-gen's output.
	other := filepath.Join(dir, "ipfs.key")
	os.WriteFile(other, []byte("/key/swarm/psk/1.0.0/\n/base16/\n"+strings.Repeat("ab", 32)+"\n"), 0o600)
	if _, err := identity.ReadPSK(other); err != nil {
		t.Fatalf("ReadPSK of a standard swarm key: %v", err)
	}
	for name, body := range map[string]string{
		"no header": strings.Repeat("ab", 32),
		"short":     "/key/swarm/psk/1.0.0/\n/base16/\nabcd\n",
		"huge":      strings.Repeat("x", 10000),
	} {
		bad := filepath.Join(dir, "bad")
		os.WriteFile(bad, []byte(body), 0o600)
		if _, err := identity.ReadPSK(bad); err == nil {
			t.Errorf("%s: ReadPSK accepted %q", name, body[:min(len(body), 40)])
		}
	}
}

func FuzzReadPSK(f *testing.F) {
	f.Add("/key/swarm/psk/1.0.0/\n/base16/\n" + strings.Repeat("ab", 32) + "\n")
	f.Add("/key/swarm/psk/1.0.0/\n/base64/\nAAAA\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, s string) {
		p := filepath.Join(dir, "k")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Skip()
		}
		_, _ = identity.ReadPSK(p)
	})
}
