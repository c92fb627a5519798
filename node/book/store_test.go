package book_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/protocol"
)

func mustSave(t *testing.T, b *book.Book, path string) bool {
	t.Helper()
	written, err := b.Save(path)
	if err != nil {
		t.Fatal(err)
	}
	return written
}

func TestSaveLoad(t *testing.T) {
	b := book.New(book.DefaultPolicy())
	member, rejected, foreign := newID(t), newID(t), newID(t)
	b.AddAddrs(member, []ma.Multiaddr{
		ma.StringCast("/ip4/192.0.2.1/tcp/4100"),
		ma.StringCast("/ip4/192.0.2.1/tcp/4101/ws/p2p/" + foreign.String() + "/p2p-circuit"),
	})
	b.Update(member, func(p *book.PeerInfo) {
		p.Role, p.State, p.Agent, p.Version = protocol.RolePrivate, book.StateMember, "overlay/x", 1
	})
	b.SetPath(member, book.PathRelayed)
	b.Update(rejected, func(p *book.PeerInfo) {
		p.Role, p.State, p.Reason, p.RefusedBy = protocol.RolePublic, book.StateRejected, `network mismatch: peer is on "b"`, book.RefusedByPeer
	})
	b.AddAddrs(foreign, []ma.Multiaddr{ma.StringCast("/ip6/::1/tcp/1/ws")})
	b.Update(foreign, func(p *book.PeerInfo) { p.State, p.Reason = book.StateForeign, "sent no handshake" })
	b.SetPath(foreign, book.PathDirect)

	path := filepath.Join(t.TempDir(), "peers.json")
	if !mustSave(t, b, path) {
		t.Fatal("first Save wrote nothing")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("saved book: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	got, err := book.Load(path, book.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	want := b.List()
	have := got.List()
	if len(have) != len(want) {
		t.Fatalf("loaded %d peers, saved %d", len(have), len(want))
	}
	for i := range want {
		w := want[i]
		w.Path = book.PathNone // no connection survives a restart
		if !samePeer(have[i], w) {
			t.Errorf("loaded\n %+v\nwant\n %+v", have[i], w)
		}
	}
	// The loaded book is live: it changes and saves again.
	got.SetPath(member, book.PathDirect)
	if p, _ := got.Get(member); p.Path != book.PathDirect {
		t.Errorf("SetPath on a loaded book: path %q", p.Path)
	}
	if !mustSave(t, got, path) {
		t.Error("Save after a change wrote nothing")
	}
}

// Save writes only when the peers changed since the last Load or Save.
func TestSaveOnlyWhenChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.json")
	b := book.New(book.DefaultPolicy())
	id := newID(t)
	b.Update(id, func(p *book.PeerInfo) { p.State = book.StateMember })
	if !mustSave(t, b, path) {
		t.Fatal("first Save wrote nothing")
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if mustSave(t, b, path) {
		t.Error("second Save with no change wrote the file")
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, first) {
		t.Error("file changed by a Save with no change")
	}
	// Another path has not seen this content.
	if !mustSave(t, b, path+".2") {
		t.Error("Save to a new path wrote nothing")
	}
	b.Update(id, func(p *book.PeerInfo) { p.Agent = "overlay/2" })
	if !mustSave(t, b, path) {
		t.Error("Save after a change wrote nothing")
	}
	// A freshly loaded book matches its file.
	got, err := book.Load(path, book.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if mustSave(t, got, path) {
		t.Error("Save right after Load wrote the file")
	}
	got.Update(id, func(p *book.PeerInfo) { p.State = book.StateRejected })
	if !mustSave(t, got, path) {
		t.Error("Save after changing a loaded book wrote nothing")
	}
}

func TestLoadMissing(t *testing.T) {
	b, err := book.Load(filepath.Join(t.TempDir(), "peers.json"), book.DefaultPolicy())
	if err != nil || b == nil || b.Len() != 0 {
		t.Fatalf("missing file: %v, %v; want an empty book", b, err)
	}
}

func TestLoadCorrupt(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":       "{\"version\":1,\"peers\":[{\"peer_id\":",
		"wrong version": `{"version":99,"peers":[]}`,
		"no version":    `{"peers":[]}`,
		"wrong types":   `{"version":1,"peers":"none"}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "peers.json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			b, err := book.Load(path, book.DefaultPolicy())
			if !errors.Is(err, book.ErrCorrupt) {
				t.Fatalf("Load = %v, want ErrCorrupt", err)
			}
			if b == nil || b.Len() != 0 {
				t.Fatalf("Load gave %v, want an empty book", b)
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("files moved aside: %v, want one", aside)
			}
			if kept, err := os.ReadFile(aside[0]); err != nil || string(kept) != content {
				t.Errorf("moved-aside file holds %q, %v; want the corrupt content", kept, err)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("corrupt file still at %s: %v", path, err)
			}
			// The empty book is usable and saves over the old name.
			id := newID(t)
			b.Update(id, func(p *book.PeerInfo) { p.State = book.StateMember })
			mustSave(t, b, path)
			again, err := book.Load(path, book.DefaultPolicy())
			if err != nil {
				t.Fatal(err)
			}
			if p, ok := again.Get(id); !ok || p.State != book.StateMember {
				t.Errorf("after save and reload: %+v, %v", p, ok)
			}
		})
	}
}

// Two corrupt books found in a row are both kept for inspection.
func TestLoadCorruptTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.json")
	for _, content := range []string{"first damage", "second damage"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := book.Load(path, book.DefaultPolicy()); !errors.Is(err, book.ErrCorrupt) {
			t.Fatalf("Load = %v, want ErrCorrupt", err)
		}
	}
	aside, _ := filepath.Glob(path + ".corrupt-*")
	var kept []string
	for _, f := range aside {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, string(b))
	}
	if len(kept) != 2 {
		t.Fatalf("two corrupt books moved aside leave %q, want both kept", kept)
	}
}

// A book file over the size cap is damaged: it is moved aside like any
// corrupt book, and the caller starts with an empty one rather than not at all.
func TestLoadOversize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 65 MiB on paper, nothing on disk.
	if err := f.Truncate(65 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, err := book.Load(path, book.DefaultPolicy())
	if b == nil || b.Len() != 0 {
		t.Fatalf("Load gave %v, want an empty book", b)
	}
	if !errors.Is(err, book.ErrCorrupt) {
		t.Fatalf("oversize peer book gives %v, want ErrCorrupt", err)
	}
	if aside, _ := filepath.Glob(path + ".corrupt-*"); len(aside) != 1 {
		t.Errorf("files moved aside: %v", aside)
	}
}

// Invalid entries are dropped one by one; the rest of the book loads.
func TestLoadSkipsInvalidEntries(t *testing.T) {
	good1, good2 := newID(t), newID(t)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	entry := func(id, state string) string {
		return fmt.Sprintf(`{"peer_id":%q,"state":%q,"path":"direct","direct_addrs":["/ip4/192.0.2.1/tcp/1"],"relayed_addrs":[],"first_seen":%q,"last_seen":%q}`,
			id, state, now, now)
	}
	content := `{"version":1,"saved":"` + now + `","peers":[` + strings.Join([]string{
		entry(good1.String(), "member"),
		entry("", "member"),
		entry("not-a-peer-id", "member"),
		entry(newID(t).String(), "befriended"),
		`42`,
		entry(good2.String(), ""),
	}, ",") + `]}`
	path := filepath.Join(t.TempDir(), "peers.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := book.Load(path, book.DefaultPolicy())
	if !errors.Is(err, book.ErrSkipped) || errors.Is(err, book.ErrCorrupt) {
		t.Fatalf("Load = %v, want ErrSkipped only", err)
	}
	if !strings.Contains(err.Error(), "4 of 6") {
		t.Errorf("error does not count the skipped entries: %v", err)
	}
	if b.Len() != 2 {
		t.Fatalf("loaded %d peers, want the 2 valid ones: %+v", b.Len(), b.List())
	}
	p, ok := b.Get(good1)
	if !ok || p.State != book.StateMember || p.Path != book.PathNone || len(p.Direct) != 1 {
		t.Errorf("valid entry loaded as %+v, %v", p, ok)
	}
	if _, ok := b.Get(good2); !ok {
		t.Error("entry not yet classified was dropped")
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("file with skipped entries was moved: %v", err)
	}
}

// Load applies the policy: expired strangers and those over the cap stay
// behind.
func TestLoadAppliesPolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.json")
	b := book.New(book.DefaultPolicy())
	member, old := newID(t), newID(t)
	b.Update(member, func(p *book.PeerInfo) { p.State, p.LastSeen = book.StateMember, time.Now().Add(-1000*time.Hour) })
	b.Update(old, func(p *book.PeerInfo) { p.State, p.LastSeen = book.StateForeign, time.Now().Add(-48*time.Hour) })
	for i := 0; i < 10; i++ {
		b.Update(newID(t), func(p *book.PeerInfo) { p.State = book.StateDiscovered })
	}
	mustSave(t, b, path)
	got, err := book.Load(path, book.Policy{StrangerTTL: 24 * time.Hour, MaxPeers: 5})
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != 5 {
		t.Errorf("loaded %d peers, cap 5", got.Len())
	}
	if _, ok := got.Get(member); !ok {
		t.Error("member not loaded")
	}
	if _, ok := got.Get(old); ok {
		t.Error("expired stranger loaded")
	}
}
