package events_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/p2p/host/eventbus"

	"github.com/overlay-net/overlay/events"
)

type evtTest struct{ N int }

// Follow delivers every event emitted after it returns, in order, and its
// goroutine ends when the context is cancelled.
func TestFollowDeliversInOrderUntilCancelled(t *testing.T) {
	bus := eventbus.NewBus()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	got := make(chan int, 100)
	if err := events.Follow(ctx, bus, new(evtTest), run, func(e any) { got <- e.(evtTest).N }); err != nil {
		t.Fatal(err)
	}
	em, err := bus.Emitter(new(evtTest))
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	for i := range 50 {
		if err := em.Emit(evtTest{N: i}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(10 * time.Second)
	for want := range 50 {
		select {
		case n := <-got:
			if n != want {
				t.Fatalf("event %d arrived as number %d", n, want)
			}
		case <-deadline:
			t.Fatalf("only %d of 50 events arrived", want)
		}
	}
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Follow's goroutine still runs after its context was cancelled")
	}
}
