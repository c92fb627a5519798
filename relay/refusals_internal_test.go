package relay

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type lineCounter struct {
	mu    sync.Mutex
	lines []string
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, string(p))
	return len(p), nil
}

// One line per limit per interval, carrying the count since the last one.
func TestRefusalsRateLimited(t *testing.T) {
	var out lineCounter
	r := NewRefusals(slog.New(slog.NewTextHandler(&out, nil)))
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	for i := 0; i < 100; i++ {
		r.Add("max-circuits")
	}
	r.Add("max-reservations")
	now = now.Add(refusalLogEvery)
	r.Add("max-circuits")
	if got := r.Counts(); got["max-circuits"] != 101 || got["max-reservations"] != 1 {
		t.Errorf("counts %v", got)
	}
	if len(out.lines) != 3 {
		t.Fatalf("%d lines, want 3: %q", len(out.lines), out.lines)
	}
	if !strings.Contains(out.lines[2], "refused=100") || !strings.Contains(out.lines[2], "total=101") {
		t.Errorf("second line for the limit: %q, want refused=100 total=101", out.lines[2])
	}
}
