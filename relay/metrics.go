package relay

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/libp2p/go-libp2p/core/peer"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

// Option changes how a relay service is built.
type Option func(*options)

type options struct {
	reg   prometheus.Registerer
	vouch func(peer.ID) error // see WithVouch
	guard Guard               // guard.go
}

// WithRegisterer also feeds go-libp2p's own relay service metrics
// (libp2p_relaysvc_*) into reg.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.reg = reg }
}

// tracer returns the overlay's own tracer, followed by libp2p's Prometheus
// one when a registerer was given.
func (o options) tracer(own circuit.MetricsTracer) circuit.MetricsTracer {
	if o.reg == nil {
		return own
	}
	return tracers{own, circuit.NewMetricsTracer(circuit.WithRegisterer(o.reg))}
}

// tracers tells every tracer in turn.
type tracers []circuit.MetricsTracer

func (ts tracers) RelayStatus(enabled bool) {
	for _, t := range ts {
		t.RelayStatus(enabled)
	}
}

func (ts tracers) ConnectionOpened() {
	for _, t := range ts {
		t.ConnectionOpened()
	}
}

func (ts tracers) ConnectionClosed(d time.Duration) {
	for _, t := range ts {
		t.ConnectionClosed(d)
	}
}

func (ts tracers) ConnectionRequestHandled(st pbv2.Status) {
	for _, t := range ts {
		t.ConnectionRequestHandled(st)
	}
}

func (ts tracers) ReservationAllowed(renewal bool) {
	for _, t := range ts {
		t.ReservationAllowed(renewal)
	}
}

func (ts tracers) ReservationClosed(n int) {
	for _, t := range ts {
		t.ReservationClosed(n)
	}
}

func (ts tracers) ReservationRequestHandled(st pbv2.Status) {
	for _, t := range ts {
		t.ReservationRequestHandled(st)
	}
}

func (ts tracers) BytesTransferred(n int) {
	for _, t := range ts {
		t.BytesTransferred(n)
	}
}
