package verdict_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/node/verdict"
)

// A waiter wakes at the verdict; a guess does not replace a verdict; a
// done context returns at once.
func TestWaitSetForget(t *testing.T) {
	v := verdict.New()
	p := peer.ID("p")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan events.State, 1)
	go func() {
		s, _ := v.Wait(ctx, p)
		got <- s
	}()
	v.Set(p, events.StateMember)
	if s := <-got; s != events.StateMember {
		t.Fatalf("waiter woke with %q, want member", s)
	}
	if v.SetIfAbsent(p, events.StateForeign) || v.Get(p) != events.StateMember {
		t.Fatal("a guess replaced the handshake's verdict")
	}
	v.Forget(p, func(s events.State) bool { return s == events.StateMember })
	if v.Get(p) != events.StateMember {
		t.Fatal("Forget dropped a verdict it was told to keep")
	}
	v.Forget(p, func(events.State) bool { return false })
	done, stop := context.WithCancel(context.Background())
	stop()
	if _, ok := v.Wait(done, p); ok {
		t.Fatal("Wait returned a verdict for a forgotten peer")
	}
}

// Prune drops old verdicts of peers no longer connected, and says whose.
func TestPrune(t *testing.T) {
	v := verdict.New()
	gone, here := peer.ID("gone"), peer.ID("here")
	v.Set(gone, events.StateForeign)
	v.Set(here, events.StateForeign)
	dropped := v.Prune(time.Now().Add(time.Minute), func(p peer.ID) bool { return p == here })
	if len(dropped) != 1 || dropped[0] != gone || v.Get(here) == "" || v.Get(gone) != "" {
		t.Fatalf("pruned %v; want only %s", dropped, gone)
	}
}
