// Package status is what a node says about itself (package node's Status):
// the report's types as the API serves them, and the wording of its health.
// It does not import package node.
package status

import (
	"fmt"
	"github.com/overlay-net/overlay/node/tun"
	"strings"
	"time"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/internal/buildinfo"
	"github.com/overlay-net/overlay/node/certs"
	"github.com/overlay-net/overlay/node/netcheck"
	"github.com/overlay-net/overlay/node/path"
	"github.com/overlay-net/overlay/node/trust"
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
	Build        buildinfo.Info `json:"build"`
	Addrs        Addrs          `json:"addrs"`
	Reservations []Reservation  `json:"reservations"`
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
	// Trust is what a node given the CA's public key holds: the
	// revocation list's and policy's versions and the offers refused.
	Trust *trust.Status `json:"trust,omitempty"`
	// NetCheck is the latest netcheck report (node/netcheck), nil before
	// the first run.
	NetCheck *netcheck.Report `json:"netcheck,omitempty"`
	// TUN is the overlay network interface (node/tun), nil without one.
	TUN *tun.Status `json:"tun,omitempty"`
}

// MaxReservations is the relay's reservation cap, 0 for a private node.
func (s Status) MaxReservations() int {
	if s.Limits == nil {
		return 0
	}
	return s.Limits.MaxReservations
}

// Addrs are the node's own addresses, in two lists as in the book.
type Addrs struct {
	Direct  []string `json:"direct"`
	Relayed []string `json:"relayed"`
}

// Reservation is one relay reservation held.
type Reservation struct {
	Relay   string    `json:"relay"`
	Expires time.Time `json:"expires"`
}

// NoReservation is why a private node that holds no reservation is not
// healthy, naming each configured relay's standing (relays, in order).
func NoReservation(relays []client.RelayReport) string {
	var why []string
	for _, r := range relays {
		w := fmt.Sprintf("relay %s: %s", ShortID(r.Relay), r.State)
		if r.Reason != "" {
			w += ": " + r.Reason
		}
		why = append(why, w)
	}
	if len(why) == 0 {
		return "no relay reservation held: no relay configured"
	}
	return "no relay reservation held; " + strings.Join(why, "; ")
}

// Refusals words every relay in relays that refused the node, for errors
// that a refusal would explain; "" when none did.
func Refusals(relays []client.RelayReport) string {
	var out []string
	for _, r := range relays {
		if r.State == events.RelayRefused {
			out = append(out, fmt.Sprintf("relay %s: %s", ShortID(r.Relay), r.Reason))
		}
	}
	return strings.Join(out, "; ")
}

// ShortID abbreviates a peer ID for people: its tail is what differs.
func ShortID(id string) string {
	if len(id) <= 16 {
		return id
	}
	return id[:6] + "…" + id[len(id)-6:]
}
