// Package book owns the peer book: what this node knows about every peer it
// has met or heard of, the policy that keeps that knowledge bounded, and its
// on-disk form.
package book

import (
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/protocol"
)

// State is what the handshake made of a peer (defined in events, which the
// relay shares).
type State = events.State

const (
	StateMember     = events.StateMember
	StateForeign    = events.StateForeign
	StateRejected   = events.StateRejected
	StateDiscovered = events.StateDiscovered
)

// Path is how this node currently reaches a peer.
type Path = events.Path

const (
	PathDirect  = events.PathDirect
	PathRelayed = events.PathRelayed
	PathNone    = events.PathNone
)

// Values of PeerInfo.RefusedBy, telling which side of a failed handshake
// said no.
const (
	RefusedBySelf = events.RefusedBySelf
	RefusedByPeer = events.RefusedByPeer
)

// LastSeenResolution is how far LastSeen must move before an Update counts as
// a change: last_seen in the file is refreshed at most this often unless
// something else about the peer changes, so a chatty peer does not cause a
// save per message.
const LastSeenResolution = time.Minute

// PeerInfo is one peer as the book knows it. Direct and relayed addresses are
// kept in separate books so the two are never mixed up.
type PeerInfo struct {
	ID        peer.ID       `json:"peer_id"`
	Role      protocol.Role `json:"role,omitempty"`
	State     State         `json:"state"`
	Reason    string        `json:"reason,omitempty"`
	RefusedBy string        `json:"refused_by,omitempty"`
	Path      Path          `json:"path"`
	Agent     string        `json:"agent,omitempty"`
	Version   int           `json:"version,omitempty"`
	// Name and Groups are the member's, from the certificate it presented
	// (certificate mode). Name is set only on the peer that owns it: of
	// two certificates with one name, the newer one's (node/certs).
	Name      string    `json:"name,omitempty"`
	Groups    []string  `json:"groups,omitempty"`
	Direct    []string  `json:"direct_addrs"`
	Relayed   []string  `json:"relayed_addrs"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// Book is the peer book: peers by ID, bounded by a Policy. It is safe for
// concurrent use.
type Book struct {
	policy Policy

	mu      sync.Mutex
	peers   map[peer.ID]*entry
	changed chan struct{} // closed and replaced on every meaningful change

	saveMu sync.Mutex          // orders Saves, so an older snapshot never overwrites a newer one
	saved  map[string][32]byte // path -> hash of the peers last loaded from or saved there
}

type entry struct {
	info PeerInfo
	// seenMark is LastSeen as of the last notified change; a refresh is only
	// worth a notification once LastSeen has moved LastSeenResolution past it.
	seenMark time.Time
}

// New returns an empty book kept within p. Callers should check p with
// Validate; fields that are not positive fall back to DefaultPolicy's values
// rather than disabling the bounds.
func New(p Policy) *Book {
	d := DefaultPolicy()
	if p.StrangerTTL <= 0 {
		p.StrangerTTL = d.StrangerTTL
	}
	if p.MaxPeers <= 0 {
		p.MaxPeers = d.MaxPeers
	}
	return &Book{
		policy:  p,
		peers:   make(map[peer.ID]*entry),
		changed: make(chan struct{}),
		saved:   make(map[string][32]byte),
	}
}

// Get returns a copy of the peer's entry.
func (b *Book) Get(id peer.ID) (PeerInfo, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.peers[id]
	if !ok {
		return PeerInfo{}, false
	}
	return e.info.clone(), true
}

// List returns copies of all entries, ordered by peer ID.
func (b *Book) List() []PeerInfo {
	b.mu.Lock()
	out := make([]PeerInfo, 0, len(b.peers))
	for _, e := range b.peers {
		out = append(out, e.info.clone())
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Len returns the number of peers in the book.
func (b *Book) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.peers)
}

// Update applies fn to the peer's entry, creating it if needed, and stamps
// LastSeen before fn runs. A new entry may displace the least recently seen
// stranger to keep the book within MaxPeers; if the book is full of members
// and the new entry is a stranger, the new entry is dropped instead.
func (b *Book) Update(id peer.ID, fn func(*PeerInfo)) {
	now := time.Now().UTC()
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.peers[id]
	var before PeerInfo
	if ok {
		before = e.info.clone() // deep: fn may write into the address slices
	} else {
		e = &entry{info: PeerInfo{ID: id, Path: PathNone, FirstSeen: now}}
		b.peers[id] = e
	}
	e.info.LastSeen = now
	fn(&e.info)
	e.info.ID = id // the map key is the identity; fn cannot move the entry

	if !ok {
		if len(b.peers) > b.policy.MaxPeers && !b.makeRoomLocked(id) {
			delete(b.peers, id)
			return
		}
		b.markLocked(e)
		return
	}
	if !sameExceptSeen(&before, &e.info) || e.info.LastSeen.Sub(e.seenMark) >= LastSeenResolution {
		b.markLocked(e)
	}
}

// SetPath records how the peer is reached now, for peers already in the book:
// a path is about a live connection, which alone does not earn a book entry.
func (b *Book) SetPath(id peer.ID, path Path) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.peers[id]
	if !ok || e.info.Path == path {
		return
	}
	e.info.Path = path
	if path != PathNone {
		e.info.LastSeen = time.Now().UTC()
	}
	b.markLocked(e)
}

// Changed returns a channel that is closed at the next meaningful change of
// the book, for a saver that writes the book out after changes.
func (b *Book) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

// markLocked records that e's current state has been announced, and
// announces it.
func (b *Book) markLocked(e *entry) {
	e.seenMark = e.info.LastSeen
	b.notifyLocked()
}

func (b *Book) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

func (p *PeerInfo) clone() PeerInfo {
	c := *p
	c.Direct = slices.Clone(p.Direct)
	c.Relayed = slices.Clone(p.Relayed)
	c.Groups = slices.Clone(p.Groups)
	// Callers and the file see an empty list, never null.
	if c.Direct == nil {
		c.Direct = []string{}
	}
	if c.Relayed == nil {
		c.Relayed = []string{}
	}
	return c
}

// sameExceptSeen compares two entries on everything but LastSeen. Nil and
// empty address lists are the same: both save as [].
func sameExceptSeen(a, b *PeerInfo) bool {
	return a.ID == b.ID && a.Role == b.Role && a.State == b.State && a.Reason == b.Reason &&
		a.RefusedBy == b.RefusedBy && a.Path == b.Path && a.Agent == b.Agent &&
		a.Version == b.Version && a.Name == b.Name && slices.Equal(a.Groups, b.Groups) && slices.Equal(a.Direct, b.Direct) &&
		slices.Equal(a.Relayed, b.Relayed) && a.FirstSeen.Equal(b.FirstSeen)
}
