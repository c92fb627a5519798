// Package events owns the overlay's connection events: handshake verdicts,
// path changes and relay reservation changes. They travel on the libp2p
// host's event bus, the one source every consumer reads (the peer book, the
// DHT publisher, the control API's status, and later metrics, stream
// migration and admission tiers): subscribe with
// host.EventBus().Subscribe(new(events.EvtPath)).
package events

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/protocol"
)

// EvtVerdict is the outcome of a peer's handshake in this session.
type EvtVerdict struct {
	Peer peer.ID
	// Conn is the connection the verdict was reached on.
	Conn  network.Conn
	State book.State // member, foreign or rejected
	Role  protocol.Role
	// Reason is why the peer is foreign or rejected, worded for this node.
	Reason string
	// RefusedBy says who refused whom (book.RefusedBySelf or
	// book.RefusedByPeer) when State is rejected.
	RefusedBy string
}

// EvtPath reports a change in how this node reaches a peer.
type EvtPath struct {
	Peer       peer.ID
	Path, Prev book.Path
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
