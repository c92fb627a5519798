package book_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/overlay-net/overlay/node/book"
)

// peers.json is read as tunnels.json is: an unknown key, an unknown or
// missing version, or data after the object sets the file aside.
func TestLoadRefusesUnknownKeys(t *testing.T) {
	for name, body := range map[string]string{
		"unknown key":     `{"version":1,"saved":"2026-01-01T00:00:00Z","peers":[],"Peers2":[]}`,
		"unknown version": `{"version":99,"peers":[]}`,
		"missing version": `{"peers":[]}`,
		"trailing data":   `{"version":1,"peers":[]} {}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "peers.json")
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := book.Load(path, book.DefaultPolicy()); !errors.Is(err, book.ErrCorrupt) {
				t.Fatalf("Load: %v, want %v", err, book.ErrCorrupt)
			}
			if aside, _ := filepath.Glob(path + ".corrupt-*"); len(aside) != 1 {
				t.Errorf("moved aside: %v", aside)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "peers.json")
	if err := os.WriteFile(path, []byte(`{"version":1,"saved":"2026-01-01T00:00:00Z","peers":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := book.Load(path, book.DefaultPolicy()); err != nil {
		t.Fatalf("Load of a good file: %v", err)
	}
}
