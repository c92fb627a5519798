package messaging

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	msmux "github.com/multiformats/go-multistream"
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
// the peer the host would pick, and fails if no answer comes within 2 s.
func Probe(ctx context.Context, c network.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	s, err := c.NewStream(network.WithAllowLimitedConn(ctx, "liveness probe"))
	if err != nil {
		return fmt.Errorf("open probe stream: %w", err)
	}
	defer s.Reset()
	_ = s.SetDeadline(time.Now().Add(probeTimeout))
	stop := context.AfterFunc(ctx, func() { _ = s.SetDeadline(time.Now()) })
	defer stop()
	if err := msmux.SelectProtoOrFail(ping.ID, s); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	out, in := make([]byte, ping.PingSize), make([]byte, ping.PingSize)
	_, _ = rand.Read(out)
	if _, err := s.Write(out); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if _, err := io.ReadFull(s, in); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if !bytes.Equal(in, out) {
		return fmt.Errorf("probe: wrong echo")
	}
	return nil
}
