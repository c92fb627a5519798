package tun

import (
	"cmp"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// refreshEvery bounds how stale the member table gets: it is rebuilt from
// the Source this often, and at most this often on a packet to an address
// it does not hold.
const refreshEvery = time.Second

// table maps overlay addresses to members. It is rebuilt whole from the
// Source and swapped in; readers see one consistent version.
type table struct {
	byAddr map[netip.Addr]peer.ID
	byID   map[peer.ID]Member
	byName map[string]peer.ID // lower-case certificate names
}

// members keeps the engine's table fresh.
type members struct {
	src  Source
	self peer.ID
	log  *slog.Logger

	cur atomic.Pointer[table] // read on every packet without the lock

	mu       sync.Mutex // serializes builds
	t        *table
	built    time.Time
	reported map[peer.ID]peer.ID  // collisions already logged
	wanted   map[peer.ID]struct{} // peers looked up by ID before the node knew them
}

// maxWanted bounds the peers looked up by ID that the table holds before
// the node knows them as members.
const maxWanted = 1024

func newMembers(src Source, self peer.ID, log *slog.Logger) *members {
	m := &members{src: src, self: self, log: log, t: &table{}, reported: map[peer.ID]peer.ID{},
		wanted: map[peer.ID]struct{}{}}
	m.refresh(true)
	return m
}

// swap makes t the current table. m.mu is held.
func (m *members) swap(t *table) *table {
	m.t = t
	m.built = time.Now()
	m.cur.Store(t)
	return t
}

// get returns the current table.
func (m *members) get() *table { return m.cur.Load() }

// refresh rebuilds the table if it is older than refreshEvery (always
// with force) and returns it.
func (m *members) refresh(force bool) *table {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !force && time.Since(m.built) < refreshEvery {
		return m.t
	}
	return m.swap(m.build())
}

// build makes a table from the Source. Of two members with one derived
// address, the one whose peer ID sorts first holds it; the other is
// reported once and reachable at its IPv6 address only. m.mu is held.
func (m *members) build() *table {
	known := m.src.Known()
	for _, k := range known {
		delete(m.wanted, k.ID) // the node knows it now
	}
	for p := range m.wanted {
		known = append(known, Known{ID: p})
	}
	slices.SortFunc(known, func(a, b Known) int { return cmp.Compare(a.ID, b.ID) })
	t := &table{byAddr: map[netip.Addr]peer.ID{}, byID: map[peer.ID]Member{}, byName: map[string]peer.ID{}}
	for _, k := range known {
		if k.ID == m.self || k.ID == "" {
			continue
		}
		if _, dup := t.byID[k.ID]; dup {
			continue
		}
		v4, v6 := AddrsFor(k.ID, k.Cert)
		mb := Member{ID: k.ID, Name: k.Name, V4: v4, V6: v6}
		for _, a := range []netip.Addr{v4, v6} {
			if holder, taken := t.byAddr[a]; taken {
				mb.Collision = holder
				if m.reported[k.ID] != holder {
					m.reported[k.ID] = holder
					m.log.Warn("two members have one overlay address: the second is unreachable at it",
						"addr", a, "holder", holder, "peer", k.ID,
						"hint", "give one of them an address in its certificate (overlay ca sign --ipv4/--ipv6)")
				}
				continue
			}
			t.byAddr[a] = k.ID
		}
		t.byID[k.ID] = mb
		if k.Name != "" {
			t.byName[strings.ToLower(k.Name)] = k.ID
		}
	}
	return t
}

// foldID finds the member whose base58 peer ID equals s ignoring case.
// Two members whose IDs differ only in case would be ambiguous: neither is
// returned then (with 46-character IDs it does not happen by chance).
func (t *table) foldID(s string) (peer.ID, bool) {
	var hit peer.ID
	n := 0
	for id := range t.byID {
		if strings.EqualFold(id.String(), s) {
			hit, n = id, n+1
		}
	}
	return hit, n == 1
}

// want adds p to the table ahead of the node knowing it: a program that
// looked p up by its ID (PEERID.overlay) can send to it at once; sending
// reaches p, and the handshake then says whether it is a member.
func (m *members) want(p peer.ID) *table {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.t.byID[p]; ok || p == m.self {
		return m.t
	}
	if len(m.wanted) >= maxWanted {
		clear(m.wanted)
	}
	m.wanted[p] = struct{}{}
	return m.swap(m.build())
}

// lookup returns the member at address a, refreshing the table once when
// it holds none there.
func (m *members) lookup(a netip.Addr) (peer.ID, bool) {
	if p, ok := m.get().byAddr[a]; ok {
		return p, true
	}
	p, ok := m.refresh(false).byAddr[a]
	return p, ok
}

// member returns the table's entry for p, refreshing once when it has none.
func (m *members) member(p peer.ID) (Member, bool) {
	if mb, ok := m.get().byID[p]; ok {
		return mb, true
	}
	mb, ok := m.refresh(false).byID[p]
	return mb, ok
}
