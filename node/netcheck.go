package node

import (
	"context"
	"net"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node/netcheck"
	"github.com/overlay-net/overlay/node/path"
	"github.com/overlay-net/overlay/protocol"
)

// newNetcheck sets up netcheck (node/netcheck): a relay answers probes on
// its QUIC socket, a private node probes its relays from its own.
func (n *Node) newNetcheck() *netcheck.Service {
	cfg := netcheck.Config{Logger: n.log, Serve: n.cfg.Role == protocol.RolePublic}
	switch {
	case n.cfg.WebSocketOnly:
		cfg.Off = "--ws-only: this node sends no UDP"
	case len(n.cfg.PSK) > 0:
		cfg.Off = "--psk: QUIC is off in a private network, this node sends no UDP"
	}
	if n.cfg.Role == protocol.RolePrivate && len(n.cfg.Relays) > 0 {
		cfg.Targets = func(local *net.UDPAddr) []netcheck.Target {
			return netcheck.Targets(n.cfg.Relays, n.host.Peerstore(), local)
		}
	}
	return netcheck.New(cfg)
}

// NetCheck probes the relays now (see node/netcheck) and returns the report,
// which status shows from then on.
func (n *Node) NetCheck(ctx context.Context) netcheck.Report { return n.nc.Run(ctx) }

// WhyRelayed explains why p is reached through a relay rather than directly.
func (n *Node) WhyRelayed(p peer.ID) path.Why {
	c := n.nc.Class()
	return n.paths.Why(p, path.LocalNAT{UDPBlocked: c == netcheck.ClassUDPBlocked,
		Symmetric: c == netcheck.ClassEndpointDependent})
}

// observePunches counts each hole punch by outcome and this node's NAT
// class (metrics).
func (n *Node) observePunches() {
	if n.metrics == nil {
		return
	}
	n.paths.ObservePunches(func(o path.PunchOutcome) { n.metrics.Punch(string(o), n.nc.Class()) })
}

// netcheckGauge is what the NAT gauges read: a private node's latest
// report; nil (no gauges) on a relay, which probes nothing.
func (n *Node) netcheckGauge() func() *netcheck.Report {
	if n.cfg.Role == protocol.RolePublic {
		return nil
	}
	return n.nc.Latest
}
