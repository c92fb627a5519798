package node

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"

	"github.com/overlay-net/overlay/protocol"
)

// dialAny connects to target without asking for membership: ping and perf
// measure any libp2p peer, overlay member or not.
func (n *Node) dialAny(ctx context.Context, target string) (peer.ID, error) {
	ai, err := n.parseTarget(target)
	if err != nil {
		return "", err
	}
	if err := n.reach(ctx, ai); err != nil {
		return "", err
	}
	return ai.ID, nil
}

// Ping sends count pings (/ipfs/ping/1.0.0) to target, interval apart, and
// returns the round-trip times. It stops at the first failure.
func (n *Node) Ping(ctx context.Context, target string, count int, interval time.Duration) ([]time.Duration, error) {
	id, err := n.dialAny(ctx, target)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(network.WithAllowLimitedConn(ctx, "ping"))
	defer cancel()
	results := ping.Ping(ctx, n.host, id)
	var rtts []time.Duration
	for len(rtts) < count {
		r, ok := <-results
		if !ok {
			return rtts, fmt.Errorf("ping %s: %w", id, ctx.Err())
		}
		if r.Error != nil {
			return rtts, fmt.Errorf("ping %s: %w", id, r.Error)
		}
		rtts = append(rtts, r.RTT)
		if len(rtts) < count && interval > 0 {
			select {
			case <-time.After(interval):
			case <-ctx.Done():
				return rtts, fmt.Errorf("ping %s: %w", id, ctx.Err())
			}
		}
	}
	return rtts, nil
}

// Perf runs the perf protocol against target: up bytes sent, down
// received. An overlay node is measured over a resumable session
// (protocol.PerfResumeID), which follows the path as it changes; any other
// libp2p peer over protocol.PerfID.
func (n *Node) Perf(ctx context.Context, target string, up, down uint64) (protocol.PerfResult, error) {
	id, err := n.dialAny(ctx, target)
	if err != nil {
		return protocol.PerfResult{}, err
	}
	return n.sessions.Perf(ctx, id, up, down)
}
