package trust

import (
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
// network without certificates, or before it presented one).
func (s *Store) CheckPeer(id peer.ID, c *cert.Certificate) error {
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
