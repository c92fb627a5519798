package backoff_test

import (
	"testing"
	"time"

	"github.com/overlay-net/overlay/internal/backoff"
)

func TestDoublesWithinJitterAndCaps(t *testing.T) {
	b := backoff.New(time.Second, 8*time.Second)
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	for i, w := range want {
		w *= time.Second
		d := b.Delay()
		if d < w*8/10 || d > w*12/10 {
			t.Fatalf("attempt %d: delay %s, want %s ±20%%", i, d, w)
		}
	}
	b.Reset()
	if d := b.Delay(); d > 1200*time.Millisecond {
		t.Fatalf("after Reset: delay %s, want about 1s", d)
	}
}
