//go:build unix

package identity_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/overlay-net/overlay/internal/fifotest"
	"github.com/overlay-net/overlay/node/identity"
)

// A FIFO in place of the key must not block the start, nor be taken for a
// missing key.
func TestSpecialFileIsDamage(t *testing.T) {
	_, err := fifotest.Load(t, "identity.key", func(path string) error {
		_, err := identity.LoadOrCreate(path)
		return err
	})
	if !errors.Is(err, identity.ErrDamaged) || !strings.Contains(err.Error(), "regular") {
		t.Errorf("FIFO key: %v, want ErrDamaged saying not a regular file", err)
	}
	dir := filepath.Join(t.TempDir(), "identity.key")
	os.Mkdir(dir, 0o700)
	if _, err := identity.LoadOrCreate(dir); !errors.Is(err, identity.ErrDamaged) {
		t.Errorf("directory as key: %v, want ErrDamaged", err)
	}
}
