package messaging

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Tracer is told the outcome of every Send, for metrics: the round-trip
// time when acknowledged, else the error. It must not block.
type Tracer interface {
	MessageSent(rtt time.Duration, err error)
}

// SetTracer sets the tracer of Send's outcomes (nil: none).
func (m *Messenger) SetTracer(t Tracer) {
	if t == nil {
		m.tracer.Store(nil)
		return
	}
	m.tracer.Store(&t)
}

// Send delivers data to the member to and waits for its acknowledgement
// (send says how), telling the tracer the outcome.
func (m *Messenger) Send(ctx context.Context, to peer.ID, data []byte) (time.Duration, error) {
	rtt, err := m.send(ctx, to, data)
	if t := m.tracer.Load(); t != nil {
		(*t).MessageSent(rtt, err)
	}
	return rtt, err
}
