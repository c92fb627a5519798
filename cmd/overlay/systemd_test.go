package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The relay's systemd unit passes systemd-analyze verify with no warning
// (an unknown or misspelt directive is only a warning, exit code 0), its
// ExecStart pointed at the binary under test, which verify requires to exist.
func TestSystemdUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: the unit is not verified here")
	}
	unit, err := os.ReadFile("../../deploy/overlay-relay.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/overlay relay") {
		t.Fatal("unit's ExecStart no longer runs /usr/local/bin/overlay relay")
	}
	path := filepath.Join(t.TempDir(), "overlay-relay.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/overlay", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
