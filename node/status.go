package node

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/internal/buildinfo"
	"github.com/overlay-net/overlay/node/status"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
	"github.com/overlay-net/overlay/relay/client"
)

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
		NetCheck:     n.nc.Latest(),
		Certificate:  n.certs.StatusOf(),
	}
	s.RelaysConfigured = len(s.Relays)
	if n.tun != nil {
		ts := n.tun.Status()
		s.TUN = &ts
	}
	if n.trust != nil {
		ts := n.trust.Status()
		s.Trust = &ts
	}
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
	return false, status.NoReservation(n.relayStatus())
}

// relayRefusals words every configured relay that refused this node, for
// errors that a refusal would explain.
func (n *Node) relayRefusals() string { return status.Refusals(n.relayStatus()) }

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
