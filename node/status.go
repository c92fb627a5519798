package node

import (
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/internal/buildinfo"
	"github.com/overlay-net/overlay/node/certs"
	"github.com/overlay-net/overlay/node/path"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
	"github.com/overlay-net/overlay/relay/client"
)

// Status is what a node says about itself.
type Status struct {
	PeerID  string        `json:"peer_id"`
	Role    protocol.Role `json:"role"`
	Network string        `json:"network"`
	Agent   string        `json:"agent"`
	Version int           `json:"version"`
	// Build is the running binary's module version, commit and Go version.
	Build        buildinfo.Info      `json:"build"`
	Addrs        StatusAddrs         `json:"addrs"`
	Reservations []StatusReservation `json:"reservations"`
	// Relays is a private node's standing with each configured relay.
	Relays           []client.RelayReport `json:"relays"`
	RelaysConfigured int                  `json:"relays_configured"`
	Peers            int                  `json:"peers_connected"`
	// Service is a public node's relay service: reservations held, circuits
	// open, refusals by limit; Limits are the limits derived from its flags.
	Service *relay.Stats  `json:"relay_service,omitempty"`
	Limits  *relay.Limits `json:"limits,omitempty"`
	// Reachability is what AutoNAT found and the addresses trusted peers
	// see this node at; HolePunch counts hole punches.
	Reachability path.Reachability `json:"reachability"`
	HolePunch    path.PunchStats   `json:"hole_punch"`
	Certificate  *certs.Status     `json:"certificate,omitempty"` // this node's, in certificate mode
}

// MaxReservations is the relay's reservation cap, 0 for a private node.
func (s Status) MaxReservations() int {
	if s.Limits == nil {
		return 0
	}
	return s.Limits.MaxReservations
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

// Status reports the node's identity, addresses and relays.
func (n *Node) Status() Status {
	s := Status{
		PeerID:       n.ID().String(),
		Role:         n.cfg.Role,
		Network:      n.cfg.Network,
		Agent:        Agent,
		Version:      n.cfg.HandshakeVersion,
		Build:        buildinfo.Get(),
		Addrs:        StatusAddrs{Direct: []string{}, Relayed: []string{}},
		Reservations: []StatusReservation{},
		Relays:       n.relayStatus(),
		Peers:        len(n.host.Network().Peers()),
		Reachability: n.Reachability(),
		HolePunch:    n.paths.PunchStats(),
		Certificate:  n.certs.StatusOf(),
	}
	s.RelaysConfigured = len(s.Relays)
	if n.relaySvc != nil {
		st, l := n.relaySvc.Stats(), relay.LimitsFor(n.cfg.Relay)
		s.Service, s.Limits = &st, &l
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
	return s
}

// relayStatus lists the configured relays in order, each as the last relay
// event left it.
func (n *Node) relayStatus() []client.RelayReport {
	k := n.keeper.Load()
	if k == nil {
		return []client.RelayReport{}
	}
	return n.relays.Report(k.Relays())
}

// Healthy reports whether the node does its job: a private node must hold
// at least one reservation. When it does not, the reason names each relay's
// standing.
func (n *Node) Healthy() (bool, string) {
	if n.ctx.Err() != nil {
		return false, "node is shutting down"
	}
	if ok, why := n.certs.Healthy(); !ok {
		return false, why
	}
	if n.cfg.Role != protocol.RolePrivate || len(n.Reservations()) > 0 {
		return true, "ok"
	}
	var why []string
	for _, r := range n.relayStatus() {
		w := fmt.Sprintf("relay %s: %s", shortID(r.Relay), r.State)
		if r.Reason != "" {
			w += ": " + r.Reason
		}
		why = append(why, w)
	}
	if len(why) == 0 {
		return false, "no relay reservation held: no relay configured"
	}
	return false, "no relay reservation held; " + strings.Join(why, "; ")
}

// relayRefusals words every configured relay that refused this node, for
// errors that a refusal would explain.
func (n *Node) relayRefusals() string {
	var out []string
	for _, r := range n.relayStatus() {
		if r.State == events.RelayRefused {
			out = append(out, fmt.Sprintf("relay %s: %s", shortID(r.Relay), r.Reason))
		}
	}
	return strings.Join(out, "; ")
}

// isRelay reports whether p is one of this node's configured relays.
func (n *Node) isRelay(p peer.ID) bool {
	k := n.keeper.Load()
	if k == nil {
		return false
	}
	for _, r := range k.Relays() {
		if r.ID == p {
			return true
		}
	}
	return false
}

// shortID abbreviates a peer ID for people: its tail is what differs.
func shortID(id string) string {
	if len(id) <= 16 {
		return id
	}
	return id[:6] + "…" + id[len(id)-6:]
}
