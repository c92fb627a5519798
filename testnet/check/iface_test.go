package main

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestParsePing(t *testing.T) {
	const out = `PING 100.65.180.149 (100.65.180.149) 56(84) bytes of data.
64 bytes from 100.65.180.149: icmp_seq=1 ttl=64 time=2.61 ms

--- 100.65.180.149 ping statistics ---
3 packets transmitted, 2 received, 33.3333% packet loss, time 402ms
rtt min/avg/max/mdev = 0.879/1.744/2.610/0.865 ms
`
	sent, got, avg, ok := parsePing(out)
	if !ok || sent != 3 || got != 2 || avg != "1.744ms" {
		t.Fatalf("parsePing = %d, %d, %q, %v; want 3, 2, 1.744ms, true", sent, got, avg, ok)
	}
	const none = "3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2003ms\n"
	if sent, got, avg, ok := parsePing(none); !ok || sent != 3 || got != 0 || avg != "-" {
		t.Fatalf("parsePing(no answers) = %d, %d, %q, %v; want 3, 0, -, true", sent, got, avg, ok)
	}
	if _, _, _, ok := parsePing("ping: x.overlay: Name or service not known\n"); ok {
		t.Fatal("parsePing found a summary in an error")
	}
}

// TestOwnedUndoesAfterCleanup: a start after the cleanups ran does not
// run; an undo registered before runs at cleanup, once.
func TestOwnedUndoesAfterCleanup(t *testing.T) {
	c := &checker{}
	var started, undone atomic.Int32
	stop, err := c.owned(func() error { started.Add(1); return nil }, func() { undone.Add(1) })
	if err != nil || started.Load() != 1 {
		t.Fatalf("owned: err %v, started %d; want nil, 1", err, started.Load())
	}
	c.runCleanup()
	stop()
	if undone.Load() != 1 {
		t.Fatalf("undone %d times, want 1", undone.Load())
	}
	if _, err := c.owned(func() error { started.Add(1); return nil }, func() { undone.Add(1) }); err == nil {
		t.Fatal("owned started after the cleanups ran")
	}
	if started.Load() != 1 || undone.Load() != 2 {
		t.Fatalf("after cleanup: started %d, undone %d; want 1, 2", started.Load(), undone.Load())
	}
}

// TestOwnedCleanupWaitsForStart: a cleanup that comes while start runs
// waits for it, then undoes what it made.
func TestOwnedCleanupWaitsForStart(t *testing.T) {
	c := &checker{}
	inStart, release := make(chan struct{}), make(chan struct{})
	var made, undoneAfterMade atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.owned(func() error {
			close(inStart)
			<-release
			made.Store(true)
			return nil
		}, func() { undoneAfterMade.Store(made.Load()) })
	}()
	<-inStart
	cleaned := make(chan struct{})
	go func() { c.runCleanup(); close(cleaned) }()
	select {
	case <-cleaned:
		t.Fatal("cleanup returned while start was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-cleaned
	<-done
	if !undoneAfterMade.Load() {
		t.Fatal("undo ran before start finished")
	}
}
