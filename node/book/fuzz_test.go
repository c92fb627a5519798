package book_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/overlay-net/overlay/node/book"
)

// FuzzLoad feeds the peer book loader arbitrary files: it always returns a
// usable book holding only valid entries, and an error that is nil,
// ErrCorrupt or ErrSkipped; what it kept saves and loads back unchanged.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"peers":[{"peer_id":"12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo","state":"member","direct_addrs":["/ip4/1.2.3.4/tcp/1"]}]}`,
		`{"version":1,"peers":[{"peer_id":"","state":"member"},{"peer_id":"x","state":"bogus"},{"peer_id":"y","state":"discovered"}]}`,
		`{"version":2,"peers":[]}`, `{"version":1,"peers":null}`, `{"version":1,"peers":[1,"a",null]}`,
		`not json`, ``, `{"version":1,"peers":[{"peer_id":"z","state":"member","last_seen":"not a time"}]}`,
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "peers.json")
		defer func() {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}()
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := book.Load(path, book.DefaultPolicy())
		if b == nil {
			t.Fatal("Load returned no book")
		}
		if err != nil && !errors.Is(err, book.ErrCorrupt) && !errors.Is(err, book.ErrSkipped) {
			t.Fatalf("Load error %v is neither ErrCorrupt nor ErrSkipped", err)
		}
		peers := b.List()
		for _, p := range peers {
			if p.ID == "" || len(p.Direct) > book.MaxAddrs || len(p.Relayed) > book.MaxAddrs {
				t.Fatalf("Load kept an invalid entry %+v", p)
			}
		}
		again := filepath.Join(dir, "again.json")
		if _, err := b.Save(again); err != nil {
			t.Fatalf("save what Load kept: %v", err)
		}
		b2, err := book.Load(again, book.DefaultPolicy())
		if err != nil || len(b2.List()) != len(peers) {
			t.Fatalf("reload of saved book: %d peers, %v; want %d, no error", len(b2.List()), err, len(peers))
		}
	})
}
