//go:build unix

package book_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/overlay-net/overlay/internal/fifotest"
	"github.com/overlay-net/overlay/node/book"
)

// A FIFO where the book should be is an error, at once: opening it would
// block until a writer shows up. It is not damage to move aside.
func TestLoadFIFO(t *testing.T) {
	path, err := fifotest.Load(t, "peers.json", func(path string) error {
		_, err := book.Load(path, book.DefaultPolicy())
		return err
	})
	if err == nil || errors.Is(err, book.ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load of a FIFO = %v; want an error naming the path, not ErrCorrupt", err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("FIFO was moved or replaced: %v", err)
	}
}
