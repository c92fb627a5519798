package relay

import (
	"errors"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/cert"
)

// Guard is the network CA's word on the relay's requests: the revocation
// list and the access policy a node in certificate mode holds
// (node/trust). Each method returns nil, or why not.
type Guard interface {
	// AllowReserve decides a reservation request from p.
	AllowReserve(p peer.ID) error
	// AllowCircuit decides a circuit from src to dst.
	AllowCircuit(src, dst peer.ID) error
}

// WithGuard makes the relay ask g before it grants a reservation or opens
// a circuit, after its ACL, in every tier (an open relay's strangers'
// too: a revoked member is no stranger to serve). Refusals are counted as
// "revoked (reservation)", "policy (reservation)" and the same for
// circuits; the peer is told PERMISSION_DENIED.
//
// Revoking a peer that holds a reservation is the node's part: it closes
// the peer's connections (node/trust's Enforcer), and go-libp2p's relay
// drops a reservation when its peer disconnects and ends its circuits with
// the connections they run on.
func WithGuard(g Guard) Option {
	return func(o *options) { o.guard = g }
}

// Refusal names of the guard.
const (
	refusedRevoked = "revoked"
	refusedPolicy  = "policy"
)

// guardACL asks the ACL it wraps (nil: allow), then the guard.
type guardACL struct {
	inner circuit.ACLFilter
	g     Guard
	ref   *Refusals
	// denied counts the guard's refusals the tracer has yet to see as
	// PERMISSION_DENIED, so that it does not count them under the ACL's
	// name too.
	denied *atomic.Int64
}

func (a guardACL) AllowReserve(p peer.ID, addr ma.Multiaddr) bool {
	if a.inner != nil && !a.inner.AllowReserve(p, addr) {
		return false
	}
	return a.verdict(a.g.AllowReserve(p), "reservation")
}

func (a guardACL) AllowConnect(src peer.ID, addr ma.Multiaddr, dst peer.ID) bool {
	if a.inner != nil && !a.inner.AllowConnect(src, addr, dst) {
		return false
	}
	return a.verdict(a.g.AllowCircuit(src, dst), "circuit")
}

func (a guardACL) verdict(err error, what string) bool {
	if err == nil {
		return true
	}
	name := refusedPolicy
	if errors.Is(err, cert.ErrRevoked) {
		name = refusedRevoked
	}
	a.denied.Add(1)
	a.ref.Add(name + " (" + what + ")")
	return false
}

// guarded wraps acl with the guard, when there is one.
func (s *Service) guarded(o options, acl circuit.ACLFilter) circuit.ACLFilter {
	if o.guard == nil {
		return acl
	}
	return guardACL{inner: acl, g: o.guard, ref: s.ref, denied: &s.guardDenied}
}

// takeGuardDenial reports whether a PERMISSION_DENIED the tracer sees was
// the guard's (already counted by name).
func (s *Service) takeGuardDenial() bool {
	for {
		n := s.guardDenied.Load()
		if n <= 0 {
			return false
		}
		if s.guardDenied.CompareAndSwap(n, n-1) {
			return true
		}
	}
}
