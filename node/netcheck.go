package node

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node/netcheck"
	"github.com/overlay-net/overlay/node/path"
	"github.com/overlay-net/overlay/protocol"
)

// newNetcheck sets up netcheck (node/netcheck): a relay answers probes on
// its QUIC socket, a private node probes its relays from its own.
func (n *Node) newNetcheck() *netcheck.Service {
	public := n.cfg.Role == protocol.RolePublic
	return netcheck.New(netcheck.Config{Logger: n.log, Serve: public, Relays: n.cfg.Relays,
		WebSocketOnly: n.cfg.WebSocketOnly, PrivateNetwork: len(n.cfg.PSK) > 0})
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
	if n.metrics != nil {
		n.paths.ObservePunches(func(o path.PunchOutcome) { n.metrics.Punch(string(o), n.nc.Class()) })
	}
}

// sprayConfig gives path spraying (node/path/spray.go) netcheck's verdict
// and the QUIC socket's non-QUIC packet path; a node that probes no relays
// has no verdict and does not spray.
func (n *Node) sprayConfig(pc *path.Config) {
	if n.nc.Gauge() == nil {
		return
	}
	pc.NAT = func() path.NATInfo {
		r := n.nc.Latest()
		if r == nil {
			return path.NATInfo{Class: netcheck.ClassUnknown}
		}
		return path.NATInfo{Class: r.Class(), Mapped: r.Mapped}
	}
	pc.Packets = func() path.PacketSocket {
		if s := n.nc.Socket(); s != nil {
			return s
		}
		return nil
	}
}
