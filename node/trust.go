package node

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node/trust"
	"github.com/overlay-net/overlay/relay"
)

// openTrust opens the trust store of a node given a CA public key
// (Config.CAPub): the revocation list and policy kept in its data
// directory. The exchange that spreads them starts with startTrust.
func (n *Node) openTrust() error {
	if n.cfg.CAPub == nil {
		n.cfg.CAPub = n.cfg.Certs.CA
	}
	if n.cfg.CAPub == nil {
		return nil
	}
	s, err := trust.Open(n.cfg.DataDir, n.cfg.CAPub, trust.WithLogger(n.log))
	if err != nil {
		return err
	}
	n.trust = s
	return nil
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
func (n *Node) startTrust() error {
	if n.trust == nil {
		return nil
	}
	svc, err := trust.Start(trust.Config{Host: n.host, Store: n.trust, Members: n, Logger: n.log})
	if err != nil {
		return fmt.Errorf("start trust exchange: %w", err)
	}
	n.trustSvc = svc
	if reg := n.regOrNil(); reg != nil {
		if err := reg.Register(n.trust.Collector(svc.Enforcer.Closed)); err != nil {
			return fmt.Errorf("register trust metrics: %w", err)
		}
	}
	return nil
}

// relayGuard is the relay option that makes it consult the trust store.
func (n *Node) relayGuard() []relay.Option {
	if n.trust == nil {
		return nil
	}
	return []relay.Option{relay.WithGuard(trustGuard{n})}
}

// Trust returns the node's trust store (the CA's revocation list and
// policy), nil for a node given no CA public key.
func (n *Node) Trust() *trust.Store { return n.trust }

// TrustStatus reports what the trust store holds; ok is false without one.
func (n *Node) TrustStatus() (st trust.Status, ok bool) {
	if n.trust == nil {
		return trust.Status{}, false
	}
	var closed int64
	if n.trustSvc != nil {
		closed = n.trustSvc.Enforcer.Closed()
	}
	return n.trust.Status(closed), true
}

// ErrNoCA refuses to publish on a node given no CA public key.
var ErrNoCA = fmt.Errorf("this node has no CA public key (--ca-pub FILE): it cannot check a revocation list or policy")

// Publish offers a signed revocation list or policy (raw, not PEM) to the
// node, which holds it and spreads it when it is newer than its own and
// signed by its CA.
func (n *Node) Publish(kind byte, doc []byte) (changed bool, err error) {
	if n.trust == nil {
		return false, ErrNoCA
	}
	return n.trust.Offer(kind, doc)
}

// The access policy on messages and tunnels (node/messaging and
// node/tunnel ask their Members for it): allowed without a trust store.

func (n *Node) allow(from, to peer.ID, a cert.Action) error {
	if n.trust == nil {
		return nil
	}
	return n.trust.Allow(from, to, a)
}

func (n *Node) AllowSend(to peer.ID) error {
	return n.allow(n.ID(), to, cert.Action{Kind: cert.ActionMessage})
}

func (n *Node) AllowReceive(from peer.ID) error {
	return n.allow(from, n.ID(), cert.Action{Kind: cert.ActionMessage})
}

func (n *Node) AllowTunnelTo(to peer.ID, service string) error {
	return n.allow(n.ID(), to, cert.Action{Kind: cert.ActionTunnel, Service: service})
}

func (n *Node) AllowTunnelFrom(from peer.ID, service string) error {
	return n.allow(from, n.ID(), cert.Action{Kind: cert.ActionTunnel, Service: service})
}

// trustGuard is a relay's relay.Guard: revoked peers get nothing, and the
// policy decides reservations (to this relay) and circuits.
type trustGuard struct{ n *Node }

func (g trustGuard) AllowReserve(p peer.ID) error {
	if err := g.n.trust.Revoked(p); err != nil {
		return err
	}
	return g.n.trust.Allow(p, g.n.ID(), cert.Action{Kind: cert.ActionReserve})
}

func (g trustGuard) AllowCircuit(src, dst peer.ID) error {
	if err := g.n.trust.Revoked(src); err != nil {
		return err
	}
	if err := g.n.trust.Revoked(dst); err != nil {
		return err
	}
	return g.n.trust.Allow(src, dst, cert.Action{Kind: cert.ActionCircuit})
}

// TrustSync runs one trust exchange with p now: each side ends up with the
// newer documents. The node runs them itself on every member connection
// and change; this is for tools and tests.
func (n *Node) TrustSync(ctx context.Context, p peer.ID) error {
	if n.trustSvc == nil {
		return ErrNoCA
	}
	return n.trustSvc.Gossip.Sync(ctx, p)
}
