package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// The shutdown bound bounds: a closer that hangs does not hold the process
// past it, and the closers before it have run.
func TestCloseWithinBounds(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	start := time.Now()
	err := closeWithin(200*time.Millisecond,
		closerFunc(func() error { return nil }),
		closerFunc(func() error { <-hang; return nil }))
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("closeWithin returned after %s with a 200ms bound", took)
	}
	if err == nil || !strings.Contains(err.Error(), "longer than 200ms") {
		t.Errorf("closeWithin = %v, want it to say the bound passed", err)
	}
	failing := errors.New("close failed")
	if err := closeWithin(time.Second, closerFunc(func() error { return failing })); !errors.Is(err, failing) {
		t.Errorf("closeWithin = %v, want the closer's error", err)
	}
}
