package node

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"

	"github.com/overlay-net/overlay/node/dial"
	"github.com/overlay-net/overlay/node/resume"
	"github.com/overlay-net/overlay/protocol"
)

// dialAny connects to target without asking for membership: ping and perf
// measure any libp2p peer, overlay member or not.
func (n *Node) dialAny(ctx context.Context, target string) (peer.ID, error) {
	ai, err := dial.ParseTarget(target)
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
	st, err := n.host.NewStream(network.WithAllowLimitedConn(ctx, "perf"), id, protocol.PerfResumeID, protocol.PerfID)
	if err != nil {
		return protocol.PerfResult{}, fmt.Errorf("open perf stream: %w", err)
	}
	if st.Protocol() == protocol.PerfID {
		stop := context.AfterFunc(ctx, func() { st.Reset() })
		defer stop()
		res, err := protocol.PerfOver(st, up, down)
		if err != nil {
			st.Reset()
			return res, err
		}
		st.Close()
		return res, nil
	}
	sess, err := n.openPerfSession(ctx, st)
	if err != nil {
		return protocol.PerfResult{Upload: up, Download: down}, err
	}
	stop := context.AfterFunc(ctx, func() { sess.Abort(ctx.Err()) })
	defer stop()
	res, err := protocol.PerfOver(sess, up, down)
	if err == nil {
		err = sess.Wait(ctx)
	}
	if err != nil {
		sess.Abort(err)
		return res, err
	}
	return res, nil
}

func (n *Node) openPerfSession(ctx context.Context, st network.Stream) (*resume.Session, error) {
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	sid := resume.NewID()
	err := protocol.WritePerfRequest(st, sid)
	if err == nil {
		err = protocol.ReadPerfAccept(st, protocol.HandshakeTimeout)
	}
	if !stop() {
		return nil, fmt.Errorf("perf: %w", ctx.Err())
	}
	if err != nil {
		st.Reset()
		return nil, fmt.Errorf("perf: %w", err)
	}
	sess, err := n.sessions.Open(st, sid)
	if err != nil {
		st.Reset()
		return nil, fmt.Errorf("perf: %w", err)
	}
	return sess, nil
}

// handlePerfSession serves a perf run over a resumable session; Close
// aborts it through the session manager.
func (n *Node) handlePerfSession(st network.Stream) {
	sid, err := protocol.ReadPerfRequest(st, protocol.HandshakeTimeout)
	if err != nil {
		st.Reset()
		return
	}
	sess, err := n.sessions.Accept(st, sid, func(st network.Stream) error { return protocol.WritePerfAccept(st) })
	if err != nil {
		st.Reset()
		return
	}
	if err := protocol.ServePerf(sess); err != nil {
		sess.Abort(err)
		return
	}
	_ = sess.Wait(n.ctx)
}
