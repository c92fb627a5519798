package node_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/overlay-net/overlay/node/book"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
)

// A node whose data directory holds a corrupt book starts with an empty one.
func TestNodeStartsWithCorruptBook(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "peers.json"), []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	var log nt.LogBuffer
	r := nt.Relay(t, nt.WithDataDir(dir), nt.WithLogBuffer(&log))
	if n := len(r.Book().List()); n != 0 {
		t.Errorf("book has %d peers, want 0", n)
	}
	if aside, _ := filepath.Glob(filepath.Join(dir, "peers.json.corrupt-*")); len(aside) != 1 {
		t.Errorf("files moved aside: %v", aside)
	}
	if s := log.String(); !strings.Contains(s, "peer book was corrupt") {
		t.Errorf("log does not report the corrupt book:\n%s", s)
	}
}

// A node restarted with the same key and data directory still knows its
// peers: state, role and addresses; the path is none until it reconnects.
func TestBookSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	key := nt.Key(t)
	a := nt.Relay(t, nt.WithDataDir(dir), nt.WithKey(key))
	b := nt.Relay(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.Connect(ctx, nt.TCPAddr(t, b).String()); err != nil {
		t.Fatal(err)
	}
	var before book.PeerInfo
	nt.Eventually(t, 10*time.Second, "b booked", func() bool {
		var ok bool
		before, ok = a.Book().Get(b.ID())
		return ok && before.State == book.StateMember && len(before.Direct) > 0
	})
	id := a.ID()
	if err := a.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "peers.json")); err != nil {
		t.Fatalf("no book file after Close: %v", err)
	}

	a2 := nt.Relay(t, nt.WithDataDir(dir), nt.WithKey(key))
	if a2.ID() != id {
		t.Fatalf("restarted with ID %s, want %s", a2.ID(), id)
	}
	after, ok := a2.Book().Get(b.ID())
	if !ok {
		t.Fatalf("restarted node forgot %s; book: %+v", b.ID(), a2.Book().List())
	}
	if after.State != book.StateMember || after.Role != protocol.RolePublic || after.Agent != before.Agent ||
		!slices.Equal(after.Direct, before.Direct) || !slices.Equal(after.Relayed, before.Relayed) ||
		!after.FirstSeen.Equal(before.FirstSeen) {
		t.Errorf("after restart\n %+v\nbefore\n %+v", after, before)
	}
	if after.Path != book.PathNone {
		t.Errorf("path after restart = %q, want none", after.Path)
	}
	// The restarted node reaches b again by ID alone, from the book.
	info, err := a2.Connect(ctx, b.ID().String())
	if err != nil || info.State != book.StateMember {
		t.Fatalf("reconnect by ID from the saved book: %+v, %v", info, err)
	}
}
