package tunnel

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// At most logBurst per-connection log lines (a tunnel cut, refused, or its
// service down) are written in each logEvery: a client opening thousands
// of connections must not flood the log with one line each.
const (
	logBurst = 20
	logEvery = 10 * time.Second
)

// logQuota bounds per-connection log lines. The lines it holds back are
// counted, and the next line written says how many ("suppressed").
type logQuota struct {
	mu      sync.Mutex
	start   time.Time
	n       int
	dropped int64
}

func (q *logQuota) allow(now time.Time) (ok bool, dropped int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if now.Sub(q.start) >= logEvery {
		q.start, q.n = now, 0
	}
	if q.n >= logBurst {
		q.dropped++
		return false, 0
	}
	q.n++
	d := q.dropped
	q.dropped = 0
	return true, d
}

func (q *logQuota) log(l *slog.Logger, level slog.Level, msg string, args ...any) {
	if !l.Enabled(context.Background(), level) {
		return
	}
	ok, dropped := q.allow(time.Now())
	if !ok {
		return
	}
	if dropped > 0 {
		args = append(args, "suppressed", dropped)
	}
	l.Log(context.Background(), level, msg, args...)
}

func (q *logQuota) info(l *slog.Logger, msg string, args ...any) {
	q.log(l, slog.LevelInfo, msg, args...)
}

func (q *logQuota) warn(l *slog.Logger, msg string, args ...any) {
	q.log(l, slog.LevelWarn, msg, args...)
}
