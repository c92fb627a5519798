package book

import (
	"slices"
	"sort"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/protocol"
)

// MaxAddrs caps each address book of a peer, the same cap the handshake
// puts on announcements, so a peer cannot grow ours without bound.
const MaxAddrs = protocol.MaxAddrs

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

// SetAddrs replaces both address books with what the peer announced. An
// address announced in the wrong list is dropped rather than trusted, so a
// peer cannot make a relayed address pass for a direct one.
func (p *PeerInfo) SetAddrs(direct, relayed []ma.Multiaddr) {
	d, _ := SplitAddrs(direct)
	_, r := SplitAddrs(relayed)
	p.Direct = mergeAddrs(nil, d)
	p.Relayed = mergeAddrs(nil, r)
}

// MergeAddrs adds addresses to the right book: relayed addresses to the
// relayed book, all others to the direct book, each capped at MaxAddrs.
func (p *PeerInfo) MergeAddrs(addrs []ma.Multiaddr) {
	d, r := SplitAddrs(addrs)
	p.Direct = mergeAddrs(p.Direct, d)
	p.Relayed = mergeAddrs(p.Relayed, r)
}

// AddAddrs adds addresses to the peer's entry, creating it if needed; see
// MergeAddrs.
func (b *Book) AddAddrs(id peer.ID, addrs []ma.Multiaddr) {
	b.Update(id, func(p *PeerInfo) { p.MergeAddrs(addrs) })
}

// mergeAddrs keeps the first MaxAddrs distinct addresses, sorted so that the
// same set always saves the same way.
func mergeAddrs(have []string, add []ma.Multiaddr) []string {
	for _, a := range add {
		s := a.String()
		if len(have) < MaxAddrs && !slices.Contains(have, s) {
			have = append(have, s)
		}
	}
	sort.Strings(have)
	return have
}

// Addrs returns both address books as multiaddrs, direct first; entries
// that no longer parse are left out.
func (p PeerInfo) Addrs() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, s := range append(slices.Clone(p.Direct), p.Relayed...) {
		if a, err := ma.NewMultiaddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}
