package messaging

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/overlay-net/overlay/relay/liveness"
)

// probeTimeout bounds one liveness check of a connection.
const probeTimeout = 2 * time.Second

// checkStalled checks the connection of a message that waits too long for
// its acknowledgement, and closes it if it no longer answers: the message
// (and every other pending one) then goes again on another path. A slow
// receiver answers the check, and nothing happens.
func (ob *outbox) checkStalled(ctx context.Context, m *Messenger, p *pending) {
	ob.mu.Lock()
	s := p.on
	ob.mu.Unlock()
	if s == nil {
		return
	}
	c := s.Conn()
	if err := Probe(ctx, c); err != nil && ctx.Err() == nil {
		m.log.Info("connection stopped answering, trying another path", "peer", ob.to,
			"via", c.RemoteMultiaddr(), "err", err)
		_ = c.Close()
	}
}

// Probe pings over connection c itself, not over whichever connection to
// the peer the host would pick (a relayed one too), and fails if no answer
// comes within 2 s.
func Probe(ctx context.Context, c network.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if _, err := liveness.Ping(network.WithAllowLimitedConn(ctx, "liveness probe"), c); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	return nil
}
