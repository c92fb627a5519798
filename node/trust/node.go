package trust

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
)

// What a node wires to its store. Each method takes a nil store as "no
// CA": nothing revoked, everything allowed.

// RevokedHook is the handshake's revocation check in certificate mode:
// fromFile (a --revocations list, may be nil) and the store's newest list,
// whichever revokes first. A nil store returns fromFile.
func (s *Store) RevokedHook(fromFile func(*cert.Certificate) error) func(*cert.Certificate) error {
	if s == nil {
		return fromFile
	}
	return func(c *cert.Certificate) error {
		if fromFile != nil {
			if err := fromFile(c); err != nil {
				return err
			}
		}
		return s.CheckPeer(c.Peer, c)
	}
}

// JoinCerts lets the store see the certificates members presented in the
// handshake (certOf, as node/certs' Members.Get): revocation by serial, and
// names and groups for the policy. A newer list calls recheck, which
// disconnects the members it revokes at once, not at the next expiry
// sweep; the subscription lives as long as the store.
func (s *Store) JoinCerts(certOf func(peer.ID) (*cert.Certificate, bool), recheck func()) {
	if s == nil {
		return
	}
	s.SetCertOf(func(p peer.ID) *cert.Certificate {
		c, _ := certOf(p)
		return c
	})
	s.SetMemberOf(func(p peer.ID) (cert.Member, bool) {
		c, ok := certOf(p)
		if !ok {
			return cert.Member{}, false
		}
		return c.Member(), true
	})
	s.Subscribe(func(Change) { recheck() })
}

// PolicedMembers is m, the node self, as messaging and tunnels see it: with
// the access policy's checks (Police), or m itself when s is nil.
func (s *Store) PolicedMembers(m NodeMembers, self peer.ID) NodeMembers {
	if s == nil {
		return m
	}
	return s.Police(m, self)
}
