package node

import (
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/protocol"
)

// State is what the handshake made of a peer.
type State string

const (
	StateMember   State = "member"   // passed the handshake
	StateForeign  State = "foreign"  // does not speak the handshake (a stock libp2p node)
	StateRejected State = "rejected" // failed the handshake; Reason says why
	// StateDiscovered: addresses found in the DHT, no handshake yet.
	StateDiscovered State = "discovered"
)

// Path is how this node currently reaches a peer.
type Path string

const (
	PathDirect  Path = "direct"
	PathRelayed Path = "relayed"
	PathNone    Path = "none"
)

// maxBookAddrs caps each address book of a peer; a peer cannot grow ours
// without bound.
const maxBookAddrs = protocol.MaxAddrs

// PeerInfo is one peer as the book knows it. Direct and relayed addresses are
// kept in separate books so the two are never mixed up.
type PeerInfo struct {
	ID        peer.ID       `json:"peer_id"`
	Role      protocol.Role `json:"role,omitempty"`
	State     State         `json:"state"`
	Reason    string        `json:"reason,omitempty"`
	Path      Path          `json:"path"`
	Agent     string        `json:"agent,omitempty"`
	Version   int           `json:"version,omitempty"`
	Direct    []string      `json:"direct_addrs"`
	Relayed   []string      `json:"relayed_addrs"`
	FirstSeen time.Time     `json:"first_seen"`
	LastSeen  time.Time     `json:"last_seen"`
}

// Book is the peer book: peers by ID. It is safe for concurrent use.
type Book struct {
	mu      sync.Mutex
	peers   map[peer.ID]*PeerInfo
	changed chan struct{} // closed and replaced on every change
}

// NewBook returns an empty book.
func NewBook() *Book {
	return &Book{peers: make(map[peer.ID]*PeerInfo), changed: make(chan struct{})}
}

// IsRelayed reports whether a is a relayed (/p2p-circuit) address.
func IsRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// SplitAddrs sorts addresses into the direct and the relayed book.
func SplitAddrs(addrs []ma.Multiaddr) (direct, relayed []ma.Multiaddr) {
	for _, a := range addrs {
		if IsRelayed(a) {
			relayed = append(relayed, a)
		} else {
			direct = append(direct, a)
		}
	}
	return direct, relayed
}

// Get returns a copy of the peer's entry.
func (b *Book) Get(id peer.ID) (PeerInfo, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.peers[id]
	if !ok {
		return PeerInfo{}, false
	}
	return p.clone(), true
}

// List returns copies of all entries, ordered by peer ID.
func (b *Book) List() []PeerInfo {
	b.mu.Lock()
	out := make([]PeerInfo, 0, len(b.peers))
	for _, p := range b.peers {
		out = append(out, p.clone())
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Update applies fn to the peer's entry, creating it if needed, and stamps
// the sighting times.
func (b *Book) Update(id peer.ID, fn func(*PeerInfo)) {
	now := time.Now().UTC()
	b.mu.Lock()
	p, ok := b.peers[id]
	if !ok {
		p = &PeerInfo{ID: id, Path: PathNone, FirstSeen: now}
		b.peers[id] = p
	}
	p.LastSeen = now
	fn(p)
	b.notifyLocked()
	b.mu.Unlock()
}

// SetPath records how the peer is reached now, for peers already in the book.
func (b *Book) SetPath(id peer.ID, path Path) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.peers[id]
	if !ok || p.Path == path {
		return
	}
	p.Path = path
	if path != PathNone {
		p.LastSeen = time.Now().UTC()
	}
	b.notifyLocked()
}

// AddAddrs adds addresses to the right book of the peer: relayed addresses to
// the relayed book, all others to the direct book.
func (b *Book) AddAddrs(id peer.ID, addrs []ma.Multiaddr) {
	direct, relayed := SplitAddrs(addrs)
	b.Update(id, func(p *PeerInfo) {
		p.Direct = mergeAddrs(p.Direct, direct)
		p.Relayed = mergeAddrs(p.Relayed, relayed)
	})
}

// Changed returns a channel that is closed at the next change of the book.
func (b *Book) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

func (b *Book) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

func (p *PeerInfo) clone() PeerInfo {
	c := *p
	c.Direct = slices.Clone(p.Direct)
	c.Relayed = slices.Clone(p.Relayed)
	if c.Direct == nil {
		c.Direct = []string{}
	}
	if c.Relayed == nil {
		c.Relayed = []string{}
	}
	return c
}

// setAddrs replaces both books with what the peer announced.
func (p *PeerInfo) setAddrs(direct, relayed []ma.Multiaddr) {
	p.Direct = mergeAddrs(nil, onlyDirect(direct))
	p.Relayed = mergeAddrs(nil, onlyRelayed(relayed))
}

// onlyDirect and onlyRelayed guard the books against a peer that announces
// an address in the wrong list.
func onlyDirect(as []ma.Multiaddr) []ma.Multiaddr {
	d, _ := SplitAddrs(as)
	return d
}

func onlyRelayed(as []ma.Multiaddr) []ma.Multiaddr {
	_, r := SplitAddrs(as)
	return r
}

func mergeAddrs(have []string, add []ma.Multiaddr) []string {
	for _, a := range add {
		s := a.String()
		if !slices.Contains(have, s) && len(have) < maxBookAddrs {
			have = append(have, s)
		}
	}
	sort.Strings(have)
	return have
}
