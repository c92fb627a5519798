package node

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node/topics"
	"github.com/overlay-net/overlay/node/trust"
	"github.com/overlay-net/overlay/relay"
)

// openTrust opens the trust store (node/trust) of a node given the CA's
// public key (Config.CAPub, or certificate mode's CA): the revocation list
// and policy kept in its data directory.
func (n *Node) openTrust() (err error) {
	if n.cfg.CAPub == nil {
		n.cfg.CAPub = n.cfg.Certs.CA
	}
	if n.cfg.CAPub != nil {
		n.trust, err = trust.Open(n.cfg.DataDir, n.cfg.CAPub, trust.WithLogger(n.log))
	}
	return err
}

// revokedHook is the handshake's revocation check in certificate mode:
// fromFile (a --revocations list, may be nil) and the trust store's newest
// list, whichever revokes first.
func (n *Node) revokedHook(fromFile func(*cert.Certificate) error) func(*cert.Certificate) error {
	if n.trust == nil {
		return fromFile
	}
	return func(c *cert.Certificate) error {
		if fromFile != nil {
			if err := fromFile(c); err != nil {
				return err
			}
		}
		return n.trust.CheckPeer(c.Peer, c)
	}
}

// joinTrust lets the trust store see the certificates members presented
// in the handshake: revocation by serial, and names and groups for the
// policy.
func (n *Node) joinTrust() {
	if n.trust == nil || n.certs == nil {
		return
	}
	n.trust.SetCertOf(func(p peer.ID) *cert.Certificate {
		c, _ := n.certs.Members.Get(p)
		return c
	})
	n.trust.SetMemberOf(func(p peer.ID) (cert.Member, bool) {
		c, ok := n.certs.Members.Get(p)
		if !ok {
			return cert.Member{}, false
		}
		return c.Member(), true
	})
	// A newer list disconnects members it revokes at once, not at the
	// next expiry sweep. The subscription lives as long as the store.
	n.trust.Subscribe(func(trust.Change) { n.certs.Recheck() })
}

// startTrust spreads the store's documents and enforces revocations.
func (n *Node) startTrust() (err error) {
	if n.trust == nil {
		return nil
	}
	n.trustSvc, err = trust.Start(trust.Config{Host: n.host, Store: n.trust, Members: n, Logger: n.log, Registerer: n.regOrNil()})
	if err != nil {
		return fmt.Errorf("start trust exchange: %w", err)
	}
	return nil
}

// policed is the node as messaging and tunnels see it: with the access
// policy's checks when it has a trust store.
func (n *Node) policed() trust.NodeMembers {
	if n.trust == nil {
		return n
	}
	return n.trust.Police(n, n.ID())
}

func (n *Node) relayGuard() []relay.Option {
	if n.trust == nil {
		return nil
	}
	return []relay.Option{relay.WithGuard(n.trust.RelayGuard(n.ID()))}
}

// Trust returns the node's trust store (nil without Config.CAPub, which
// its methods take as "no CA": nothing revoked, everything allowed).
func (n *Node) Trust() *trust.Store { return n.trust }

// topicPolicy is the access policy's say on topics (node/topics Policy),
// nil without a trust store: every member may publish and follow.
func (n *Node) topicPolicy() topics.Policy {
	if n.trust == nil {
		return nil
	}
	return n.trust.TopicGuard(n.ID())
}
