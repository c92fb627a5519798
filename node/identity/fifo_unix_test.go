//go:build unix

package identity_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/overlay-net/overlay/node/identity"
)

// A FIFO in place of the key must not block the start, nor be taken for a
// missing key.
func TestSpecialFileIsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := identity.LoadOrCreate(path); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, identity.ErrDamaged) || !strings.Contains(err.Error(), "regular") {
			t.Errorf("FIFO key: %v, want ErrDamaged saying not a regular file", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("LoadOrCreate blocked on a FIFO")
	}
	dir := filepath.Join(t.TempDir(), "identity.key")
	os.Mkdir(dir, 0o700)
	if _, err := identity.LoadOrCreate(dir); !errors.Is(err, identity.ErrDamaged) {
		t.Errorf("directory as key: %v, want ErrDamaged", err)
	}
}
