package topics

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
)

// Gossipsub leaves out peers reached only over limited connections (a relay
// circuit with a data or time limit): go-libp2p-pubsub #712. In the version
// audited (auditedPubsub) it opens every stream with the context given to
// NewPubSub (handleNewPeer gets p.ctx), and admits a new peer only when
// host.Network().Connectedness is Connected (handlePendingPeers). So the
// service hands gossipsub a context that allows limited connections and a
// host whose network calls a limited peer connected; members on such
// circuits then take part, with the circuit's own limits. checkPubsub
// refuses to start on another version until the test that a member reached
// only over a limited circuit receives (TestLimitedMemberReceives) has run
// against it and auditedPubsub has been raised.
//
// Backfill relies on the same version in three more ways: its raw
// tracer's DeliverMessage reports every message accepted from a peer, of
// relayed topics too, but not the node's own (which the validator stores
// instead); a graft is traced for both sides of a new mesh link; and its
// StrictSign signature is what verifySignature checks. TestBackfillAfterCut,
// TestBackfillTailAfterCut, TestBackfillNonMemberRefused and
// TestBackfillSignatureMatchesGossipsub cover them: run them too.
const auditedPubsub = "v0.19.0"

const pubsubModule = "github.com/libp2p/go-libp2p-pubsub"

// limitedReason names topics' streams among limited-connection users.
const limitedReason = "overlay topics"

func allowLimited(ctx context.Context) context.Context {
	return network.WithAllowLimitedConn(ctx, limitedReason)
}

// checkPubsub fails when the binary holds a go-libp2p-pubsub other than
// the one audited for limited connections.
func checkPubsub() error {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	for _, m := range bi.Deps {
		if m.Path != pubsubModule {
			continue
		}
		v := m.Version
		if m.Replace != nil {
			v = m.Replace.Version
		}
		if v != auditedPubsub && v != "" {
			return fmt.Errorf("topics: %s %s is not the version audited for relayed members (%s): run TestLimitedMemberReceives against it, then raise auditedPubsub",
				pubsubModule, v, auditedPubsub)
		}
	}
	return nil
}

// limitedHost is the host gossipsub sees: peers reached only over limited
// connections count as connected, and its streams may use such connections.
type limitedHost struct{ host.Host }

func (h limitedHost) Network() network.Network { return limitedNet{h.Host.Network()} }

func (h limitedHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	return h.Host.NewStream(allowLimited(ctx), p, pids...)
}

type limitedNet struct{ network.Network }

func (n limitedNet) Connectedness(p peer.ID) network.Connectedness {
	c := n.Network.Connectedness(p)
	if c == network.Limited {
		return network.Connected
	}
	return c
}

// Repath moves gossipsub's streams with p off relayed connections once a
// direct one exists (node/path calls it then): gossipsub keeps one stream
// each way for as long as it can, which would keep a relayed connection
// busy, so never idle enough to close. Resetting them makes both sides
// open new ones, which take the direct connection; messages in flight on
// them come again by another mesh peer or by gossip.
func (s *Service) Repath(p peer.ID) {
	direct := false
	var relayed []network.Conn
	for _, c := range s.cfg.Host.Network().ConnsToPeer(p) {
		if c.IsClosed() {
			continue
		}
		if _, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT); err == nil {
			relayed = append(relayed, c)
		} else {
			direct = true
		}
	}
	if !direct {
		return
	}
	for _, c := range relayed {
		for _, st := range c.GetStreams() {
			if isPubsub(st.Protocol()) {
				_ = st.Reset()
			}
		}
	}
}

// isPubsub reports whether id is one of gossipsub's (or floodsub's)
// protocols.
func isPubsub(id protocol.ID) bool {
	for _, pid := range pubsub.GossipSubDefaultProtocols {
		if id == pid {
			return true
		}
	}
	return id == pubsub.FloodSubID
}
