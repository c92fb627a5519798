// Package limits sizes a node's libp2p resource manager for what the
// overlay runs on top of libp2p's defaults: room for tunnels' streams, on a
// private node here and on a relay through relay.Limits.Scale.
package limits

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/overlay-net/overlay/protocol"
)

// MaxTunnelsPerPeer is how many tunnels may be open between this node and
// one peer, each way. libp2p's default limits allow about 75 inbound
// streams of one protocol from one peer, which would cut a forward short
// at a few dozen concurrent connections; an idle tunnel costs some
// kilobytes (docs/BENCHMARKS.md, "Tunnels"), so thousands are affordable.
const MaxTunnelsPerPeer = 4096

// maxTunnels bounds tunnels in all, each way.
const maxTunnels = 4 * MaxTunnelsPerPeer

// ScaleForTunnels raises libp2p's stream limits to make room for tunnels:
// the tunnel protocol's own, and every peer's and the system's by as much,
// since a tunnel's stream counts against those too.
func ScaleForTunnels(s *rcmgr.ScalingLimitConfig) {
	// A tunnel's stream is of 1.0.0, of 2.0.0, or (2.0.0 after a change
	// of path) of the resume protocol, which perf sessions use too.
	for _, id := range []libp2pproto.ID{protocol.TunnelID, protocol.TunnelID2, protocol.ResumeID} {
		s.AddProtocolLimit(id, rcmgr.BaseLimit{StreamsInbound: maxTunnels, StreamsOutbound: maxTunnels,
			Streams: 2 * maxTunnels, Memory: s.ProtocolBaseLimit.Memory}, s.ProtocolLimitIncrease)
		s.AddProtocolPeerLimit(id, rcmgr.BaseLimit{StreamsInbound: MaxTunnelsPerPeer, StreamsOutbound: MaxTunnelsPerPeer,
			Streams: 2 * MaxTunnelsPerPeer, Memory: s.ProtocolPeerBaseLimit.Memory}, s.ProtocolPeerLimitIncrease)
	}
	for _, l := range []*rcmgr.BaseLimit{&s.PeerBaseLimit, &s.SystemBaseLimit, &s.AllowlistedSystemBaseLimit} {
		extra := MaxTunnelsPerPeer
		if l != &s.PeerBaseLimit {
			extra = maxTunnels
		}
		l.StreamsInbound += extra
		l.StreamsOutbound += extra
		l.Streams += 2 * extra
	}
}

// Private is a private node's resource manager: libp2p's defaults
// (autoscaled from memory) with room for tunnels; extra options feed its
// metrics.
func Private(extra ...rcmgr.Option) (libp2p.Option, error) {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	ScaleForTunnels(&scaling)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(scaling.AutoScale()), extra...)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return libp2p.ResourceManager(rm), nil
}
