package trust

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
)

// ErrDenied is wrapped by every refusal of the access policy (a *Denied).
var ErrDenied = errors.New("denied by the access policy")

// Denied is a refusal by the access policy: which rule (or the default)
// denied which action, from whom to whom. Its text does not repeat
// ErrDenied's, which callers put in front.
type Denied struct {
	Version  uint64 // of the policy
	Rule     string // the rule's name, or cert.DecisionByDefault
	Action   cert.Action
	From, To peer.ID
}

func (d *Denied) Error() string {
	rule := fmt.Sprintf("rule %q", d.Rule)
	if d.Rule == cert.DecisionByDefault {
		rule = "its default (no rule matched)"
	}
	return fmt.Sprintf("policy version %d, %s, denies %s from %s to %s",
		d.Version, rule, ActionString(d.Action), d.From, d.To)
}

func (d *Denied) Unwrap() error { return ErrDenied }

// ActionString words an action for refusals and logs.
func ActionString(a cert.Action) string {
	switch a.Kind {
	case cert.ActionMessage:
		return "messages"
	case cert.ActionTunnel:
		return fmt.Sprintf("tunnels to service %q", a.Service)
	case cert.ActionIP:
		if a.Proto == "icmp" {
			return "icmp packets"
		}
		return fmt.Sprintf("%s packets to port %d", a.Proto, a.Port)
	case cert.ActionReserve:
		return "relay reservations"
	case cert.ActionCircuit:
		return "relayed connections"
	case cert.ActionPublish:
		return fmt.Sprintf("publishing to topic %q", a.Topic)
	case cert.ActionFollow:
		return fmt.Sprintf("following topic %q", a.Topic)
	}
	return fmt.Sprintf("action %d", a.Kind)
}

// MemberOf tells who a peer is: the name and groups of the certificate it
// presented. ok is false for a peer with none known; its Member then holds
// only the peer ID, which "*" and "peer:ID" selectors still match.
type MemberOf func(p peer.ID) (m cert.Member, ok bool)

type memberFunc struct{ fn MemberOf }

// SetMemberOf sets how the store learns a peer's name and groups (the
// node wires it to the peer book's certificates). Until it is set, or for
// a peer it does not know, a peer is known by its ID alone.
func (s *Store) SetMemberOf(fn MemberOf) {
	if fn == nil {
		s.member.Store(nil)
		return
	}
	s.member.Store(&memberFunc{fn})
}

// Member returns who p is, as MemberOf says, or p's ID alone.
func (s *Store) Member(p peer.ID) cert.Member {
	if f := s.member.Load(); f != nil {
		if m, ok := f.fn(p); ok {
			m.Peer = p
			return m
		}
	}
	return cert.Member{Peer: p}
}

// Allow returns nil when the policy held lets from do a to to, else a
// *Denied naming the rule. Without a policy everything is allowed.
func (s *Store) Allow(from, to peer.ID, a cert.Action) error {
	p := s.Policy()
	if p == nil {
		return nil
	}
	d := p.Allows(s.Member(from), s.Member(to), a)
	if d.Allowed {
		return nil
	}
	return &Denied{Version: p.Version, Rule: d.Rule, Action: a, From: from, To: to}
}

// CheckPeer is the revocation check the handshake and the relay consult:
// an error wrapping cert.ErrRevoked when the list held revokes the peer id,
// or the certificate c it presented (by serial); c may be nil (a peer of a
// network without certificates, or before it presented one). A nil store
// revokes nothing.
func (s *Store) CheckPeer(id peer.ID, c *cert.Certificate) error {
	if s == nil {
		return nil
	}
	l := s.Revocations()
	if l == nil {
		return nil
	}
	if c != nil {
		if err := l.Check(c); err != nil {
			return err
		}
	}
	if l.RevokesPeer(id) {
		return fmt.Errorf("%w: peer %s, in revocation list version %d", cert.ErrRevoked, id, l.Version)
	}
	return nil
}

// CertOf returns the certificate a connected peer presented, nil for none.
// The node wires it to the handshake's certificates (certificate mode);
// until then revocation goes by peer ID only.
type CertOf func(p peer.ID) *cert.Certificate

type certFunc struct{ fn CertOf }

// SetCertOf sets how the store finds the certificate a peer presented, so
// that revoking a serial reaches the peer that presented it.
func (s *Store) SetCertOf(fn CertOf) {
	if fn == nil {
		s.certs.Store(nil)
		return
	}
	s.certs.Store(&certFunc{fn})
}

// Revoked is CheckPeer with the certificate p presented, as CertOf says.
func (s *Store) Revoked(p peer.ID) error {
	var c *cert.Certificate
	if f := s.certs.Load(); f != nil {
		c = f.fn(p)
	}
	return s.CheckPeer(p, c)
}

// AllowMessage is Allow for a message from to to. A nil store (a node
// given no CA) allows everything, as do the other checks below.
func (s *Store) AllowMessage(from, to peer.ID) error {
	if s == nil {
		return nil
	}
	return s.Allow(from, to, cert.Action{Kind: cert.ActionMessage})
}

// AllowTunnel is Allow for a tunnel from from to service on to.
func (s *Store) AllowTunnel(from, to peer.ID, service string) error {
	if s == nil {
		return nil
	}
	return s.Allow(from, to, cert.Action{Kind: cert.ActionTunnel, Service: service})
}

// RelayGuard is a relay's relay.Guard: revoked peers get nothing, and the
// policy decides reservations (to the relay self) and circuits.
type RelayGuard struct {
	s    *Store
	self peer.ID
}

// RelayGuard returns the guard of the relay whose peer ID is self.
func (s *Store) RelayGuard(self peer.ID) RelayGuard { return RelayGuard{s, self} }

func (g RelayGuard) AllowReserve(p peer.ID) error {
	if err := g.s.Revoked(p); err != nil {
		return err
	}
	return g.s.Allow(p, g.self, cert.Action{Kind: cert.ActionReserve})
}

func (g RelayGuard) AllowCircuit(src, dst peer.ID) error {
	if err := g.s.Revoked(src); err != nil {
		return err
	}
	if err := g.s.Revoked(dst); err != nil {
		return err
	}
	return g.s.Allow(src, dst, cert.Action{Kind: cert.ActionCircuit})
}

// NodeMembers is what node/messaging and node/tunnel ask of the node.
type NodeMembers interface {
	EnsureMember(ctx context.Context, p peer.ID) error
	IsMember(ctx context.Context, p peer.ID) bool
}

// Policed is a node's members as messaging and tunnels see them, with the
// access policy's checks (messaging.Policy, tunnel.Policy) added.
type Policed struct {
	NodeMembers
	s    *Store
	self peer.ID
}

// Police adds the policy checks of the node self to m.
func (s *Store) Police(m NodeMembers, self peer.ID) Policed { return Policed{m, s, self} }

func (p Policed) AllowSend(to peer.ID) error      { return p.s.AllowMessage(p.self, to) }
func (p Policed) AllowReceive(from peer.ID) error { return p.s.AllowMessage(from, p.self) }
func (p Policed) AllowTunnelTo(to peer.ID, service string) error {
	return p.s.AllowTunnel(p.self, to, service)
}
func (p Policed) AllowTunnelFrom(from peer.ID, service string) error {
	return p.s.AllowTunnel(from, p.self, service)
}
