package node

import (
	"fmt"
	"path/filepath"

	"github.com/libp2p/go-libp2p"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/overlay-net/overlay/node/metrics"
	"github.com/overlay-net/overlay/node/tunnel"
	"github.com/overlay-net/overlay/protocol"
)

// tunnelsFileName keeps the services exposed at run time, in the data
// directory.
const tunnelsFileName = "tunnels.json"

// MaxTunnelsPerPeer is how many tunnels may be open between this node and
// one peer, each way. libp2p's default limits allow about 75 inbound
// streams of one protocol from one peer, which would cut a forward short
// at a few dozen concurrent connections; an idle tunnel costs some
// kilobytes (docs/BENCHMARKS.md, "Tunnels"), so thousands are affordable.
const MaxTunnelsPerPeer = 4096

// maxTunnels bounds tunnels in all, each way.
const maxTunnels = 4 * MaxTunnelsPerPeer

// scaleForTunnels raises libp2p's stream limits to make room for tunnels:
// the tunnel protocol's own, and every peer's and the system's by as much,
// since a tunnel's stream counts against those too.
func scaleForTunnels(s *rcmgr.ScalingLimitConfig) {
	id := libp2pproto.ID(protocol.TunnelID)
	s.AddProtocolLimit(id, rcmgr.BaseLimit{StreamsInbound: maxTunnels, StreamsOutbound: maxTunnels,
		Streams: 2 * maxTunnels, Memory: s.ProtocolBaseLimit.Memory}, s.ProtocolLimitIncrease)
	s.AddProtocolPeerLimit(id, rcmgr.BaseLimit{StreamsInbound: MaxTunnelsPerPeer, StreamsOutbound: MaxTunnelsPerPeer,
		Streams: 2 * MaxTunnelsPerPeer, Memory: s.ProtocolPeerBaseLimit.Memory}, s.ProtocolPeerLimitIncrease)
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

// privateResourceManager is libp2p's default resource manager with room
// for tunnels.
func (n *Node) privateResourceManager() (libp2p.Option, error) {
	extra, err := metrics.ResourceManagerOptions(n.regOrNil())
	if err != nil {
		return nil, err
	}
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	scaleForTunnels(&scaling)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(scaling.AutoScale()), extra...)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return libp2p.ResourceManager(rm), nil
}

func (n *Node) startTunnels() error {
	tc := tunnel.Config{Expose: n.cfg.Expose, Logger: n.log}
	if n.cfg.DataDir != "" {
		tc.StorePath = filepath.Join(n.cfg.DataDir, tunnelsFileName)
	}
	t, err := tunnel.New(n.host, n, tc)
	if err != nil {
		return err
	}
	n.tunnels = t
	return nil
}

// Tunnels returns the node's tunnel service: services it exposes to
// members, and local ports it forwards to theirs.
func (n *Node) Tunnels() *tunnel.Service { return n.tunnels }
