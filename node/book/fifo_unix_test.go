//go:build unix

package book_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/overlay-net/overlay/node/book"
)

// A FIFO where the book should be is an error, at once: opening it would
// block until a writer shows up. It is not damage to move aside.
func TestLoadFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.json")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := book.Load(path, book.DefaultPolicy())
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, book.ErrCorrupt) || !strings.Contains(err.Error(), path) {
			t.Errorf("Load of a FIFO = %v; want an error naming the path, not ErrCorrupt", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Load blocked on a FIFO")
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("FIFO was moved or replaced: %v", err)
	}
}
