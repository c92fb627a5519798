package book_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/protocol"
)

func newID(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// samePeer compares entries field by field, times by instant.
func samePeer(a, b book.PeerInfo) bool {
	return a.ID == b.ID && a.Role == b.Role && a.State == b.State && a.Reason == b.Reason &&
		a.RefusedBy == b.RefusedBy && a.Path == b.Path && a.Agent == b.Agent && a.Version == b.Version &&
		slices.Equal(a.Direct, b.Direct) && slices.Equal(a.Relayed, b.Relayed) &&
		a.FirstSeen.Equal(b.FirstSeen) && a.LastSeen.Equal(b.LastSeen)
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestStateStranger(t *testing.T) {
	for s, want := range map[book.State]bool{
		book.StateMember: false, book.StateForeign: true, book.StateRejected: true,
		book.StateDiscovered: true, "": true,
	} {
		if got := s.Stranger(); got != want {
			t.Errorf("%q.Stranger() = %v, want %v", s, got, want)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := book.DefaultPolicy().Validate(); err != nil {
		t.Errorf("default policy: %v", err)
	}
	for _, p := range []book.Policy{
		{StrangerTTL: 0, MaxPeers: 1},
		{StrangerTTL: -time.Second, MaxPeers: 1},
		{StrangerTTL: time.Hour, MaxPeers: 0},
		{StrangerTTL: time.Hour, MaxPeers: -1},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", p)
		}
	}
	// An invalid policy still gives a bounded book.
	b := book.New(book.Policy{})
	for i := 0; i < 5; i++ {
		b.Update(newID(t), func(p *book.PeerInfo) { p.State = book.StateForeign })
	}
	if b.Len() != 5 {
		t.Errorf("book from a zero policy holds %d of 5 peers", b.Len())
	}
}

func TestAddAddrsSplits(t *testing.T) {
	b := book.New(book.DefaultPolicy())
	id, relayID := newID(t), newID(t)
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
	if p.Path != book.PathNone {
		t.Errorf("new peer path = %q, want none", p.Path)
	}
	// The cap holds per book.
	var many []ma.Multiaddr
	for i := 0; i < book.MaxAddrs+10; i++ {
		many = append(many, ma.StringCast(fmt.Sprintf("/ip4/10.1.%d.%d/tcp/1", i/250, i%250)))
	}
	b.AddAddrs(id, many)
	if p, _ := b.Get(id); len(p.Direct) != book.MaxAddrs || len(p.Relayed) != len(relayed) {
		t.Errorf("after %d more: %d direct, %d relayed; want %d and %d",
			len(many), len(p.Direct), len(p.Relayed), book.MaxAddrs, len(relayed))
	}
}

// SetAddrs replaces both books and drops addresses announced in the wrong
// list.
func TestSetAddrsGuardsLists(t *testing.T) {
	relayID := newID(t)
	d := ma.StringCast("/ip4/192.0.2.1/tcp/4100")
	r := ma.StringCast("/ip4/198.51.100.1/tcp/4100/p2p/" + relayID.String() + "/p2p-circuit")
	p := book.PeerInfo{Direct: []string{"/ip4/203.0.113.9/tcp/1"}, Relayed: []string{"/old"}}
	p.SetAddrs([]ma.Multiaddr{d, r}, []ma.Multiaddr{r, d})
	if !slices.Equal(p.Direct, []string{d.String()}) || !slices.Equal(p.Relayed, []string{r.String()}) {
		t.Errorf("SetAddrs: direct %v, relayed %v", p.Direct, p.Relayed)
	}
}

// Strangers expire after StrangerTTL; members never do.
func TestStrangersExpire(t *testing.T) {
	pol := book.Policy{StrangerTTL: time.Hour, MaxPeers: 100}
	b := book.New(pol)
	member, foreign, fresh := newID(t), newID(t), newID(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	b.Update(member, func(p *book.PeerInfo) { p.State, p.LastSeen = book.StateMember, t0 })
	b.Update(foreign, func(p *book.PeerInfo) { p.State, p.LastSeen = book.StateForeign, t0 })
	b.Update(fresh, func(p *book.PeerInfo) { p.State, p.LastSeen = book.StateDiscovered, t0.Add(30*time.Minute) })

	if n := b.Evict(t0.Add(pol.StrangerTTL), nil); n != 0 {
		t.Errorf("Evict at exactly the TTL removed %d, want 0", n)
	}
	ch := b.Changed()
	if n := b.Evict(t0.Add(pol.StrangerTTL+time.Second), nil); n != 1 {
		t.Errorf("Evict past the TTL removed %d, want 1", n)
	}
	if !closed(ch) {
		t.Error("eviction did not signal Changed")
	}
	if _, ok := b.Get(foreign); ok {
		t.Error("expired stranger still in the book")
	}
	if _, ok := b.Get(fresh); !ok {
		t.Error("recent stranger evicted")
	}
	if n := b.Evict(t0.Add(1000*time.Hour), nil); n != 1 {
		t.Errorf("Evict much later removed %d, want 1", n)
	}
	if _, ok := b.Get(member); !ok {
		t.Error("member evicted")
	}
	ch = b.Changed()
	if n := b.Evict(t0.Add(2000*time.Hour), nil); n != 0 || closed(ch) {
		t.Errorf("Evict with nothing to do removed %d, changed %v", n, closed(ch))
	}
}

func TestConnectedStrangersStay(t *testing.T) {
	b := book.New(book.Policy{StrangerTTL: time.Hour, MaxPeers: 2})
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := []peer.ID{newID(t), newID(t), newID(t), newID(t)}
	for i, id := range ids {
		// Inserted with recent times, so the cap alone decides below.
		b.Update(id, func(p *book.PeerInfo) { p.State, p.LastSeen = book.StateForeign, t0.Add(time.Duration(i)*time.Minute) })
	}
	// Insert-time eviction already kept the book at the cap.
	if b.Len() != 2 {
		t.Fatalf("Len = %d, want 2", b.Len())
	}
	b = book.New(book.Policy{StrangerTTL: time.Hour, MaxPeers: 10})
	for _, id := range ids {
		b.Update(id, func(p *book.PeerInfo) { p.State, p.LastSeen = book.StateRejected, t0 })
	}
	up := map[peer.ID]bool{ids[0]: true, ids[2]: true}
	if n := b.Evict(t0.Add(48*time.Hour), func(id peer.ID) bool { return up[id] }); n != 2 {
		t.Errorf("Evict removed %d, want the 2 unconnected", n)
	}
	for _, id := range ids {
		if _, ok := b.Get(id); ok != up[id] {
			t.Errorf("peer %s in book %v, connected %v", id, ok, up[id])
		}
	}
}

// A new entry in a full book displaces the least recently seen stranger.
func TestInsertDisplacesOldestStranger(t *testing.T) {
	b := book.New(book.Policy{StrangerTTL: 1000 * time.Hour, MaxPeers: 10})
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []peer.ID
	for i := 0; i < 10; i++ {
		id := newID(t)
		ids = append(ids, id)
		b.Update(id, func(p *book.PeerInfo) {
			p.State, p.LastSeen = book.StateDiscovered, t0.Add(time.Duration(i)*time.Minute)
		})
	}
	// Five members arrive in a full book.
	var members []peer.ID
	for i := 0; i < 5; i++ {
		id := newID(t)
		members = append(members, id)
		b.Update(id, func(p *book.PeerInfo) { p.State = book.StateMember })
	}
	if b.Len() != 10 {
		t.Fatalf("Len = %d after members displaced strangers, want 10", b.Len())
	}
	for _, id := range members {
		if _, ok := b.Get(id); !ok {
			t.Errorf("member %s missing", id)
		}
	}
	// The five oldest strangers made room.
	for i, id := range ids {
		if _, ok := b.Get(id); ok != (i >= 5) {
			t.Errorf("stranger %d (seen at +%dm) in book: %v", i, i, ok)
		}
	}
}

// Evict shrinks a book over the cap by its least recently seen strangers,
// skipping connected ones and members.
func TestEvictShrinksToCap(t *testing.T) {
	b := book.New(book.Policy{StrangerTTL: 1000 * time.Hour, MaxPeers: 3})
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []peer.ID
	for i := 0; i < 6; i++ {
		id := newID(t)
		ids = append(ids, id)
		b.Update(id, func(p *book.PeerInfo) { p.State = book.StateMember })
	}
	// Members may exceed the cap; demoted, they are strangers over it.
	for i, id := range ids {
		b.Update(id, func(p *book.PeerInfo) { p.State, p.LastSeen = book.StateRejected, t0.Add(time.Duration(i)*time.Minute) })
	}
	b.Update(ids[5], func(p *book.PeerInfo) { p.State = book.StateMember })
	if b.Len() != 6 {
		t.Fatalf("Len = %d, want 6", b.Len())
	}
	// ids[0] is the oldest but connected; ids[5] is a member.
	if n := b.Evict(t0.Add(time.Hour), func(id peer.ID) bool { return id == ids[0] }); n != 3 {
		t.Errorf("Evict removed %d, want 3", n)
	}
	for i, id := range ids {
		_, ok := b.Get(id)
		if want := i == 0 || i == 4 || i == 5; ok != want {
			t.Errorf("peer %d in book: %v, want %v", i, ok, want)
		}
	}
}

// A flood of new stranger identities never grows the book beyond MaxPeers,
// and members met earlier survive it.
func TestCapHoldsAgainstFlood(t *testing.T) {
	const max = 100
	b := book.New(book.Policy{StrangerTTL: time.Hour, MaxPeers: max})
	var members []peer.ID
	for i := 0; i < 10; i++ {
		id := newID(t)
		members = append(members, id)
		b.Update(id, func(p *book.PeerInfo) { p.State = book.StateMember })
	}
	for i := 0; i < max+500; i++ {
		state := []book.State{book.StateForeign, book.StateRejected, book.StateDiscovered, ""}[i%4]
		b.Update(newID(t), func(p *book.PeerInfo) { p.State = state })
		if n := b.Len(); n > max {
			t.Fatalf("after %d strangers the book holds %d, cap %d", i+1, n, max)
		}
	}
	for _, id := range members {
		if p, ok := b.Get(id); !ok || p.State != book.StateMember {
			t.Errorf("member %s lost to the flood", id)
		}
	}
}

// Members may exceed the cap; a stranger then has no room and is not kept.
func TestMembersAboveCap(t *testing.T) {
	b := book.New(book.Policy{StrangerTTL: time.Hour, MaxPeers: 3})
	for i := 0; i < 5; i++ {
		b.Update(newID(t), func(p *book.PeerInfo) { p.State = book.StateMember })
	}
	if b.Len() != 5 {
		t.Fatalf("Len = %d, want all 5 members", b.Len())
	}
	stranger := newID(t)
	ch := b.Changed()
	b.Update(stranger, func(p *book.PeerInfo) { p.State = book.StateForeign })
	if _, ok := b.Get(stranger); ok || b.Len() != 5 {
		t.Errorf("stranger kept in a book full of members: Len %d", b.Len())
	}
	if closed(ch) {
		t.Error("a dropped stranger signalled Changed")
	}
	if n := b.Evict(time.Now().Add(100*time.Hour), nil); n != 0 {
		t.Errorf("Evict removed %d members", n)
	}
}

func TestChangedOnlyOnMeaningfulChange(t *testing.T) {
	b := book.New(book.DefaultPolicy())
	id := newID(t)
	ch := b.Changed()
	b.Update(id, func(p *book.PeerInfo) { p.State = book.StateForeign })
	if !closed(ch) {
		t.Fatal("new peer did not signal Changed")
	}
	ch = b.Changed()
	b.Update(id, func(*book.PeerInfo) {}) // refreshes LastSeen by far less than the resolution
	b.AddAddrs(id, nil)
	b.Update(id, func(p *book.PeerInfo) { p.Direct = []string{} }) // nil and empty save alike
	if closed(ch) {
		t.Fatal("an Update that only refreshed LastSeen signalled Changed")
	}
	b.SetPath(id, book.PathNone)
	b.SetPath(newID(t), book.PathDirect) // not in the book
	if closed(ch) {
		t.Fatal("SetPath without a change signalled Changed")
	}
	b.Update(id, func(p *book.PeerInfo) {
		p.State, p.Reason, p.RefusedBy = book.StateRejected, "wrong network", book.RefusedBySelf
	})
	if !closed(ch) {
		t.Fatal("a state change did not signal Changed")
	}
	ch = b.Changed()
	b.SetPath(id, book.PathDirect)
	if !closed(ch) {
		t.Fatal("a path change did not signal Changed")
	}
	ch = b.Changed()
	b.Update(id, func(p *book.PeerInfo) { p.LastSeen = p.LastSeen.Add(book.LastSeenResolution) })
	if !closed(ch) {
		t.Fatal("LastSeen moving by the resolution did not signal Changed")
	}
	// Small refreshes add up against the last announced LastSeen, not the
	// previous refresh.
	ch = b.Changed()
	step := book.LastSeenResolution / 3
	for i := 1; i <= 3; i++ {
		base, _ := b.Get(id)
		b.Update(id, func(p *book.PeerInfo) { p.LastSeen = base.LastSeen.Add(step) })
		if i < 3 && closed(ch) {
			t.Fatalf("refresh %d of a third of the resolution signalled Changed", i)
		}
	}
	if !closed(ch) {
		t.Fatal("three refreshes of a third of the resolution did not signal Changed")
	}
}

// Callers get copies: changing them does not change the book.
func TestCopies(t *testing.T) {
	b := book.New(book.DefaultPolicy())
	id := newID(t)
	b.AddAddrs(id, []ma.Multiaddr{ma.StringCast("/ip4/192.0.2.1/tcp/1")})
	p, _ := b.Get(id)
	p.Direct[0] = "mutated"
	l := b.List()
	l[0].Direct[0] = "mutated"
	if p, _ := b.Get(id); p.Direct[0] != "/ip4/192.0.2.1/tcp/1" {
		t.Errorf("book changed through a copy: %v", p.Direct)
	}
	if q, _ := b.Get(newID(t)); q.ID != "" {
		t.Errorf("Get of an unknown peer = %+v", q)
	}
	other := newID(t)
	b.Update(other, func(p *book.PeerInfo) {})
	if l := b.List(); len(l) != 2 || l[0].ID > l[1].ID || l[1].Relayed == nil {
		t.Errorf("List = %+v; want 2 entries by ID, empty lists not nil", l)
	}
}

// The book's methods may be called from many goroutines at once.
func TestConcurrent(t *testing.T) {
	b := book.New(book.Policy{StrangerTTL: time.Hour, MaxPeers: 6})
	path := filepath.Join(t.TempDir(), "peers.json")
	ids := make([]peer.ID, 8)
	for i := range ids {
		ids[i] = newID(t)
	}
	var wg sync.WaitGroup
	const rounds = 200
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				id := ids[(g+i)%len(ids)]
				switch i % 8 {
				case 0:
					state := []book.State{book.StateMember, book.StateForeign}[g%2]
					b.Update(id, func(p *book.PeerInfo) { p.State, p.Version = state, i })
				case 1:
					b.AddAddrs(id, []ma.Multiaddr{
						ma.StringCast(fmt.Sprintf("/ip4/10.0.%d.%d/tcp/1", g, i%250)),
						ma.StringCast(fmt.Sprintf("/ip4/10.0.0.1/tcp/2/p2p/%s/p2p-circuit", ids[0])),
					})
				case 2:
					b.SetPath(id, []book.Path{book.PathDirect, book.PathRelayed, book.PathNone}[i%3])
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
						if _, err := b.Save(path); err != nil {
							t.Error(err)
						}
					}
				case 6:
					select {
					case <-b.Changed():
					default:
					}
					_ = b.Len()
				case 7:
					b.Evict(time.Now().Add(time.Duration(i%3)*time.Hour), func(p peer.ID) bool {
						_, _ = b.Get(p) // a connected callback may use the book
						return p == ids[0]
					})
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
	if _, err := b.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := book.Load(path, book.Policy{StrangerTTL: time.Hour, MaxPeers: 6})
	if err != nil {
		t.Fatalf("book saved under load does not read back: %v", err)
	}
	if got.Len() != b.Len() {
		t.Errorf("reloaded %d peers, had %d", got.Len(), b.Len())
	}
}

// With no connection state at hand, a new entry displaces a stranger the
// book has no path to before one it reaches, even a more recently seen one.
func TestInsertSparesReachedStrangers(t *testing.T) {
	b := book.New(book.Policy{StrangerTTL: time.Hour, MaxPeers: 2})
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	reached, idle := newID(t), newID(t)
	b.Update(reached, func(p *book.PeerInfo) { p.State, p.LastSeen = book.StateForeign, t0 })
	b.SetPath(reached, book.PathRelayed)
	b.Update(reached, func(p *book.PeerInfo) { p.LastSeen = t0 })
	b.Update(idle, func(p *book.PeerInfo) { p.State, p.LastSeen = book.StateForeign, t0.Add(time.Minute) })
	b.Update(newID(t), func(p *book.PeerInfo) { p.State = book.StateDiscovered })
	if _, ok := b.Get(reached); !ok {
		t.Error("reached stranger displaced")
	}
	if _, ok := b.Get(idle); ok {
		t.Error("unreached stranger kept over the cap")
	}
}
