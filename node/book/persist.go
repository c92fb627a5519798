package book

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Open is Load as a node uses it: path "" keeps the book in memory only; a
// corrupt file (set aside) or skipped entries are logged and the node goes
// on with what was read. Other errors are returned.
func Open(path string, p Policy, log *slog.Logger) (*Book, error) {
	if path == "" {
		return New(p), nil
	}
	b, err := Load(path, p)
	switch {
	case errors.Is(err, ErrCorrupt):
		log.Error("peer book was corrupt, starting empty", "err", err)
	case errors.Is(err, ErrSkipped):
		log.Warn("peer book had invalid entries, skipped them", "err", err)
	case err != nil:
		return nil, err
	}
	return b, nil
}

// SaveLoop writes the book to path shortly after it changes, batching
// bursts, until ctx is done (the caller saves once more on close): a second
// after a change, or 50 times as long as the last save took when that is
// longer (a big relay's book), so that saving a busy book costs at most
// about 2% of a core. A crash loses only that interval.
func (b *Book) SaveLoop(ctx context.Context, path string, log *slog.Logger) {
	var took time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.Changed():
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(time.Second, 50*took)):
		}
		start := time.Now()
		if _, err := b.Save(path); err != nil {
			log.Error("save peer book", "err", err)
		}
		took = time.Since(start)
	}
}
