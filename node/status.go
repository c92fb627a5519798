package node

import (
	"time"

	"github.com/overlay-net/overlay/protocol"
)

// Status is what a node says about itself.
type Status struct {
	PeerID       string              `json:"peer_id"`
	Role         protocol.Role       `json:"role"`
	Network      string              `json:"network"`
	Agent        string              `json:"agent"`
	Version      int                 `json:"version"`
	Addrs        StatusAddrs         `json:"addrs"`
	Reservations []StatusReservation `json:"reservations"`
	Relays       int                 `json:"relays_configured"`
	Peers        int                 `json:"peers_connected"`
}

// StatusAddrs are the node's own addresses, in two lists as in the book.
type StatusAddrs struct {
	Direct  []string `json:"direct"`
	Relayed []string `json:"relayed"`
}

// StatusReservation is one relay reservation held.
type StatusReservation struct {
	Relay   string    `json:"relay"`
	Expires time.Time `json:"expires"`
}

// Status reports the node's identity, addresses and reservations.
func (n *Node) Status() Status {
	s := Status{
		PeerID:       n.ID().String(),
		Role:         n.cfg.Role,
		Network:      n.cfg.Network,
		Agent:        Agent,
		Version:      n.cfg.HandshakeVersion,
		Addrs:        StatusAddrs{Direct: []string{}, Relayed: []string{}},
		Reservations: []StatusReservation{},
		Peers:        len(n.host.Network().Peers()),
	}
	for _, a := range n.FullAddrs() {
		s.Addrs.Direct = append(s.Addrs.Direct, a.String())
	}
	for _, a := range n.RelayedAddrs() {
		s.Addrs.Relayed = append(s.Addrs.Relayed, a.String()+"/p2p/"+s.PeerID)
	}
	for _, r := range n.Reservations() {
		s.Reservations = append(s.Reservations, StatusReservation{Relay: r.Relay.String(), Expires: r.Expires.UTC()})
	}
	if k := n.keeper.Load(); k != nil {
		s.Relays = len(k.Relays())
	}
	return s
}

// Healthy reports whether the node does its job: a private node must hold
// at least one reservation.
func (n *Node) Healthy() (bool, string) {
	if n.ctx.Err() != nil {
		return false, "node is shutting down"
	}
	if n.cfg.Role == protocol.RolePrivate && len(n.Reservations()) == 0 {
		return false, "no relay reservation held"
	}
	return true, "ok"
}
