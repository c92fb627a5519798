package resume

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/protocol"
)

// Perf runs the perf protocol to p: over a session of this manager
// (protocol.PerfResumeID), which follows the path as it changes, when p
// serves it; else over protocol.PerfID, as any libp2p peer does.
func (m *Manager) Perf(ctx context.Context, p peer.ID, up, down uint64) (protocol.PerfResult, error) {
	st, err := m.t.NewStream(network.WithAllowLimitedConn(ctx, "perf"), p, protocol.PerfResumeID, protocol.PerfID)
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
	sess, err := m.openPerf(ctx, st)
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

func (m *Manager) openPerf(ctx context.Context, st network.Stream) (*Session, error) {
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	id := NewID()
	err := protocol.WritePerfRequest(st, id)
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
	sess, err := m.Open(st, id)
	if err != nil {
		st.Reset()
		return nil, fmt.Errorf("perf: %w", err)
	}
	return sess, nil
}

// HandlePerf serves a perf run over a session (protocol.PerfResumeID);
// Close aborts it.
func (m *Manager) HandlePerf(st network.Stream) {
	id, err := protocol.ReadPerfRequest(st, protocol.HandshakeTimeout)
	if err != nil {
		st.Reset()
		return
	}
	sess, err := m.Accept(st, id, func(st network.Stream) error { return protocol.WritePerfAccept(st) })
	if err != nil {
		st.Reset()
		return
	}
	if err := protocol.ServePerf(sess); err != nil {
		sess.Abort(err)
		return
	}
	_ = sess.Wait(m.ctx)
}
