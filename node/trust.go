package node

import (
	"fmt"

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

// joinTrust lets the trust store see the certificates members presented
// in the handshake (trust.Store.JoinCerts).
func (n *Node) joinTrust() {
	if n.certs != nil {
		n.trust.JoinCerts(n.certs.Members.Get, n.certs.Recheck)
	}
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
func (n *Node) policed() trust.NodeMembers { return n.trust.PolicedMembers(n, n.ID()) }

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
