// Package events owns the vocabulary the node and the relay share: what the
// handshake made of a peer (State), how a peer is reached (Path), and the
// events that report their changes and a private node's relay standing. It
// sits below node/ and relay/ and imports neither; the events travel on the
// libp2p host's event bus (host.EventBus().Subscribe(new(events.EvtPath))).
package events

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
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

// Stranger reports whether a peer in state s is subject to eviction: anyone
// but a member, including a peer not classified yet (the empty state).
func (s State) Stranger() bool { return s != StateMember }

// Known reports whether s is one of the states above or the empty state (a
// peer seen before any verdict, for instance through identify).
func (s State) Known() bool {
	switch s {
	case "", StateMember, StateForeign, StateRejected, StateDiscovered:
		return true
	}
	return false
}

// Path is how this node currently reaches a peer.
type Path string

const (
	PathDirect  Path = "direct"
	PathRelayed Path = "relayed"
	PathNone    Path = "none"
)

// Values of EvtVerdict.RefusedBy, telling which side of a failed handshake
// said no.
const (
	RefusedBySelf = "self" // this node refused the peer
	RefusedByPeer = "peer" // the peer refused this node
)

// EvtVerdict is the outcome of a peer's handshake in this session.
type EvtVerdict struct {
	Peer peer.ID
	// Conn is the connection the verdict was reached on.
	Conn  network.Conn
	State State // member, foreign or rejected
	Role  protocol.Role
	// Reason is why the peer is foreign or rejected, worded for this node.
	Reason string
	// RefusedBy says who refused whom (RefusedBySelf or
	// RefusedByPeer) when State is rejected.
	RefusedBy string
}

// EvtPath reports a change in how this node reaches a peer.
type EvtPath struct {
	Peer       peer.ID
	Path, Prev Path
	// Conn is the connection that carries Path now: the direct one when
	// there is one; nil when Path is none.
	Conn network.Conn
}

// RelayState is where a private node stands with one of its relays.
type RelayState string

const (
	RelayConnecting  RelayState = "connecting"  // first attempt under way
	RelayReserved    RelayState = "reserved"    // holds a reservation
	RelayRefused     RelayState = "refused"     // the relay refused this node; Reason says why
	RelayUnreachable RelayState = "unreachable" // the last attempt failed; retrying
)

// EvtRelay reports a private node's standing with one relay: a reservation
// gained, renewed, lost or refused, or an attempt that failed.
type EvtRelay struct {
	Relay       peer.ID
	State, Prev RelayState
	Reason      string
	// Expires is when the reservation lapses unless renewed (reserved only).
	Expires time.Time
	// NextRetry is when the next attempt starts (refused, unreachable).
	NextRetry time.Time
	// Addrs are this node's relayed addresses through the relay (reserved
	// only).
	Addrs []ma.Multiaddr
}

// Gained reports a new reservation, as opposed to a renewal.
func (e EvtRelay) Gained() bool { return e.State == RelayReserved && e.Prev != RelayReserved }

// Lost reports a reservation that is no longer held.
func (e EvtRelay) Lost() bool { return e.Prev == RelayReserved && e.State != RelayReserved }
