package node_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
)

func peerID(t testing.TB) peer.ID {
	t.Helper()
	id, err := peer.IDFromPrivateKey(nt.Key(t))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// samePeer compares entries field by field, times by instant.
func samePeer(a, b node.PeerInfo) bool {
	return a.ID == b.ID && a.Role == b.Role && a.State == b.State && a.Reason == b.Reason &&
		a.Path == b.Path && a.Agent == b.Agent && a.Version == b.Version &&
		slices.Equal(a.Direct, b.Direct) && slices.Equal(a.Relayed, b.Relayed) &&
		a.FirstSeen.Equal(b.FirstSeen) && a.LastSeen.Equal(b.LastSeen)
}

func TestBookSaveLoad(t *testing.T) {
	b := node.NewBook()
	member, rejected, foreign := peerID(t), peerID(t), peerID(t)
	b.AddAddrs(member, []ma.Multiaddr{
		ma.StringCast("/ip4/192.0.2.1/tcp/4100"),
		ma.StringCast("/ip4/192.0.2.1/tcp/4101/ws/p2p/" + foreign.String() + "/p2p-circuit"),
	})
	b.Update(member, func(p *node.PeerInfo) {
		p.Role, p.State, p.Agent, p.Version = protocol.RolePrivate, node.StateMember, "overlay/x", 1
	})
	b.SetPath(member, node.PathRelayed)
	b.Update(rejected, func(p *node.PeerInfo) {
		p.Role, p.State, p.Reason = protocol.RolePublic, node.StateRejected, `network mismatch: peer is on "b"`
	})
	b.AddAddrs(foreign, []ma.Multiaddr{ma.StringCast("/ip6/::1/tcp/1/ws")})
	b.Update(foreign, func(p *node.PeerInfo) { p.State, p.Reason = node.StateForeign, "sent no handshake" })
	b.SetPath(foreign, node.PathDirect)

	path := filepath.Join(t.TempDir(), "peers.json")
	if err := b.Save(path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("saved book: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	got, err := node.LoadBook(path)
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
		w.Path = node.PathNone // no connection survives a restart
		if !samePeer(have[i], w) {
			t.Errorf("loaded\n %+v\nwant\n %+v", have[i], w)
		}
	}
	// The loaded book is live: it changes and saves again.
	got.SetPath(member, node.PathDirect)
	if p, _ := got.Get(member); p.Path != node.PathDirect {
		t.Errorf("SetPath on a loaded book: path %q", p.Path)
	}
	if err := got.Save(path); err != nil {
		t.Fatal(err)
	}
}

func TestLoadBookMissing(t *testing.T) {
	b, err := node.LoadBook(filepath.Join(t.TempDir(), "peers.json"))
	if err != nil || b == nil || len(b.List()) != 0 {
		t.Fatalf("missing file: %v, %v; want an empty book", b, err)
	}
}

func TestLoadBookCorrupt(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":       "{\"version\":1,\"peers\":[{\"peer_id\":",
		"wrong version": `{"version":99,"peers":[]}`,
		"wrong types":   `{"version":1,"peers":"none"}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "peers.json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			b, err := node.LoadBook(path)
			if !errors.Is(err, node.ErrCorruptBook) {
				t.Fatalf("LoadBook = %v, want ErrCorruptBook", err)
			}
			if b == nil || len(b.List()) != 0 {
				t.Fatalf("LoadBook gave %v, want an empty book", b)
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
			id := peerID(t)
			b.Update(id, func(p *node.PeerInfo) { p.State = node.StateMember })
			if err := b.Save(path); err != nil {
				t.Fatal(err)
			}
			again, err := node.LoadBook(path)
			if err != nil {
				t.Fatal(err)
			}
			if p, ok := again.Get(id); !ok || p.State != node.StateMember {
				t.Errorf("after save and reload: %+v, %v", p, ok)
			}
		})
	}
}

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
	var before node.PeerInfo
	nt.Eventually(t, 10*time.Second, "b booked", func() bool {
		var ok bool
		before, ok = a.Book().Get(b.ID())
		return ok && before.State == node.StateMember && len(before.Direct) > 0
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
	if after.State != node.StateMember || after.Role != protocol.RolePublic || after.Agent != before.Agent ||
		!slices.Equal(after.Direct, before.Direct) || !slices.Equal(after.Relayed, before.Relayed) ||
		!after.FirstSeen.Equal(before.FirstSeen) {
		t.Errorf("after restart\n %+v\nbefore\n %+v", after, before)
	}
	if after.Path != node.PathNone {
		t.Errorf("path after restart = %q, want none", after.Path)
	}
	// The restarted node reaches b again by ID alone, from the book.
	info, err := a2.Connect(ctx, b.ID().String())
	if err != nil || info.State != node.StateMember {
		t.Fatalf("reconnect by ID from the saved book: %+v, %v", info, err)
	}
}

// The book's methods may be called from many goroutines at once.
func TestBookConcurrent(t *testing.T) {
	b := node.NewBook()
	path := filepath.Join(t.TempDir(), "peers.json")
	ids := make([]peer.ID, 8)
	for i := range ids {
		ids[i] = peerID(t)
	}
	var wg sync.WaitGroup
	const rounds = 200
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				id := ids[(g+i)%len(ids)]
				switch i % 7 {
				case 0:
					b.Update(id, func(p *node.PeerInfo) { p.State, p.Version = node.StateMember, i })
				case 1:
					b.AddAddrs(id, []ma.Multiaddr{
						ma.StringCast(fmt.Sprintf("/ip4/10.0.%d.%d/tcp/1", g, i%250)),
						ma.StringCast(fmt.Sprintf("/ip4/10.0.0.1/tcp/2/p2p/%s/p2p-circuit", ids[0])),
					})
				case 2:
					b.SetPath(id, []node.Path{node.PathDirect, node.PathRelayed, node.PathNone}[i%3])
				case 3:
					for _, p := range b.List() {
						p.Direct = append(p.Direct, "mutated") // copies: must not touch the book
					}
				case 4:
					if p, ok := b.Get(id); ok && len(p.Direct) > 0 {
						p.Direct[0] = "mutated"
					}
				case 5:
					if g%4 == 0 { // a few savers; each save syncs to disk
						if err := b.Save(path); err != nil {
							t.Error(err)
						}
					}
				case 6:
					select {
					case <-b.Changed():
					default:
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, p := range b.List() {
		if slices.Contains(p.Direct, "mutated") {
			t.Errorf("a caller's copy changed the book: %v", p.Direct)
		}
		if len(p.Direct) > protocol.MaxAddrs || len(p.Relayed) > protocol.MaxAddrs {
			t.Errorf("peer has %d+%d addresses, cap %d", len(p.Direct), len(p.Relayed), protocol.MaxAddrs)
		}
	}
	if err := b.Save(path); err != nil {
		t.Fatal(err)
	}
	if _, err := node.LoadBook(path); err != nil {
		t.Fatalf("book saved under load does not read back: %v", err)
	}
}

func TestBookAddAddrsSplits(t *testing.T) {
	b := node.NewBook()
	id, relayID := peerID(t), peerID(t)
	direct := []string{"/ip4/192.0.2.1/tcp/4100", "/ip4/192.0.2.1/tcp/4101/ws", "/ip6/::1/udp/1/quic-v1"}
	relayed := []string{
		"/ip4/198.51.100.1/tcp/4101/ws/p2p/" + relayID.String() + "/p2p-circuit",
		"/ip4/198.51.100.1/tcp/4100/p2p/" + relayID.String() + "/p2p-circuit",
	}
	var all []ma.Multiaddr
	for _, s := range append(slices.Clone(direct), relayed...) {
		all = append(all, ma.StringCast(s))
	}
	b.AddAddrs(id, all)
	b.AddAddrs(id, all[:2]) // no duplicates
	p, ok := b.Get(id)
	if !ok {
		t.Fatal("peer not added")
	}
	slices.Sort(direct)
	slices.Sort(relayed)
	if !slices.Equal(p.Direct, direct) {
		t.Errorf("direct = %v, want %v", p.Direct, direct)
	}
	if !slices.Equal(p.Relayed, relayed) {
		t.Errorf("relayed = %v, want %v", p.Relayed, relayed)
	}
	if p.Path != node.PathNone {
		t.Errorf("new peer path = %q, want none", p.Path)
	}
	// The cap holds per book.
	var many []ma.Multiaddr
	for i := 0; i < protocol.MaxAddrs+10; i++ {
		many = append(many, ma.StringCast(fmt.Sprintf("/ip4/10.1.%d.%d/tcp/1", i/250, i%250)))
	}
	b.AddAddrs(id, many)
	if p, _ := b.Get(id); len(p.Direct) != protocol.MaxAddrs || len(p.Relayed) != len(relayed) {
		t.Errorf("after %d more: %d direct, %d relayed; want %d and %d",
			len(many), len(p.Direct), len(p.Relayed), protocol.MaxAddrs, len(relayed))
	}
}

// Two corrupt books found in a row are both kept for inspection.
func TestLoadBookCorruptTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.json")
	for _, content := range []string{"first damage", "second damage"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := node.LoadBook(path); !errors.Is(err, node.ErrCorruptBook) {
			t.Fatalf("LoadBook = %v, want ErrCorruptBook", err)
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
// corrupt book, and the node starts with an empty one rather than not at all.
func TestLoadBookOversize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "peers.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 65 MiB on paper, nothing on disk.
	if err := f.Truncate(65 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, err := node.LoadBook(path)
	if b == nil || len(b.List()) != 0 {
		t.Fatalf("LoadBook gave %v, want an empty book", b)
	}
	if !errors.Is(err, node.ErrCorruptBook) {
		// node.New turns any other LoadBook error into a failed start.
		_, nerr := node.New(node.Config{Role: protocol.RolePublic, Key: nt.Key(t), DataDir: dir})
		t.Fatalf("oversize peer book gives %v (not ErrCorruptBook); node.New: %v", err, nerr)
	}
	if aside, _ := filepath.Glob(path + ".corrupt-*"); len(aside) != 1 {
		t.Errorf("files moved aside: %v", aside)
	}
}
