//go:build unix

// Package fifotest checks that a loader refuses a FIFO where it expects a
// regular file, at once: opening a FIFO for reading blocks until a writer
// shows up, which would hang a node's start with no log line.
package fifotest

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Load makes a FIFO named name in a fresh directory and calls load on its
// path. It fails t if load blocks for 5 s, skips t where FIFOs cannot be
// made, and returns the path and load's error.
func Load(t testing.TB, name string, load func(path string) error) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- load(path) }()
	select {
	case err := <-done:
		return path, err
	case <-time.After(5 * time.Second):
		t.Fatalf("loading %s blocked on a FIFO", name)
		return path, nil
	}
}
