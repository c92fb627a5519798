// Package metrics owns the overlay's own Prometheus metrics: counters fed
// from the node's events (handshakes, paths, relay standings) and its
// messenger, and gauges read from the node's state at each scrape.
// go-libp2p's collectors register themselves; this package only hands them
// the registry.
package metrics

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/certs"
	"github.com/overlay-net/overlay/node/messaging"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
)

// ResourceManagerOptions feed libp2p's resource manager collectors in reg;
// they count only what a trace reporter tells them. Nil reg: none.
func ResourceManagerOptions(reg prometheus.Registerer) ([]rcmgr.Option, error) {
	if reg == nil {
		return nil, nil
	}
	str, err := rcmgr.NewStatsTraceReporter()
	if err != nil {
		return nil, err
	}
	return []rcmgr.Option{rcmgr.WithTraceReporter(str)}, nil
}

// State is what the gauges read at each scrape.
type State struct {
	Peers        func() []book.PeerInfo
	Reservations func() int
	// Relay returns a public node's relay service stats; ok false on a
	// private node.
	Relay func() (st relay.Stats, ok bool)
	// Certs is the node's certificate mode, nil outside it.
	Certs *certs.Manager
}

// Metrics are the overlay's own metrics, fed from the node's events and its
// messenger. Make them with New before the host (HolePunch goes to the
// hole-punch service), then Start once the messenger exists.
type Metrics struct {
	handshakes *prometheus.CounterVec
	paths      *prometheus.CounterVec
	relayEvts  *prometheus.CounterVec
	renewals   *prometheus.CounterVec
	sent       prometheus.Counter
	failed     *prometheus.CounterVec
	received   prometheus.Counter
	rtt        prometheus.Histogram
	// HolePunch is libp2p's, made at once so that its collectors are there
	// before the first punch.
	HolePunch holepunch.MetricsTracer

	reg    prometheus.Registerer
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New makes the metrics for reg; nothing is registered until Start.
func New(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		reg:       reg,
		HolePunch: holepunch.NewMetricsTracer(holepunch.WithRegisterer(reg)),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "overlay_handshakes_total",
			Help: "Handshake outcomes: result member, foreign (no overlay handshake) or rejected; reason of a rejection; who refused."},
			[]string{"result", "reason", "refused_by"}),
		paths: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "overlay_path_changes_total",
			Help: "Changes of how a peer is reached (direct, relayed, none); from=relayed,to=direct counts traffic leaving a relay."},
			[]string{"from", "to"}),
		relayEvts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "overlay_relay_events_total",
			Help: "A private node's relay standings entered: reserved, refused, unreachable, connecting."},
			[]string{"state"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "overlay_reservation_renewals_total",
			Help: "Reservation renewals by result: ok, or failed (the reservation was lost instead)."},
			[]string{"result"}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "overlay_messages_sent_total",
			Help: "Messages sent and acknowledged."}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "overlay_messages_failed_total",
			Help: "Messages not acknowledged, by reason."}, []string{"reason"}),
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "overlay_messages_received_total",
			Help: "Messages received and delivered."}),
		rtt: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "overlay_message_rtt_seconds",
			Help:    "Time from a message's first write to its acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
	}
}

// Start registers the metrics and feeds them from bus and msgr until Close;
// the gauges read st.
func (m *Metrics) Start(bus event.Bus, msgr *messaging.Messenger, st State) error {
	for _, c := range []prometheus.Collector{m.handshakes, m.paths, m.relayEvts, m.renewals, m.sent, m.failed,
		m.received, m.rtt, stateCollector{st}} {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	follow := func(evtType any, fn func(any)) error {
		return events.Follow(ctx, bus, evtType, m.run, fn)
	}
	err := follow(new(events.EvtVerdict), func(e any) {
		ev := e.(events.EvtVerdict)
		m.handshakes.WithLabelValues(string(ev.State), reasonClass(ev), ev.RefusedBy).Inc()
	})
	if err == nil {
		err = follow(new(events.EvtPath), func(e any) {
			ev := e.(events.EvtPath)
			m.paths.WithLabelValues(string(ev.Prev), string(ev.Path)).Inc()
		})
	}
	if err == nil {
		err = follow(new(events.EvtRelay), func(e any) {
			ev := e.(events.EvtRelay)
			m.relayEvts.WithLabelValues(string(ev.State)).Inc()
			switch {
			case ev.Prev == events.RelayReserved && ev.State == events.RelayReserved:
				m.renewals.WithLabelValues("ok").Inc()
			case ev.Lost():
				m.renewals.WithLabelValues("failed").Inc()
			}
		})
	}
	if err != nil {
		return err
	}
	msgr.SetTracer(m)
	msgs, stop := msgr.Subscribe(64)
	m.run(func() {
		defer stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-msgs:
				m.received.Inc()
			}
		}
	})
	return nil
}

// Close stops feeding the metrics and waits for it; safe without Start.
func (m *Metrics) Close() {
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
}

func (m *Metrics) run(fn func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		fn()
	}()
}

// MessageSent counts a Send's outcome.
func (m *Metrics) MessageSent(rtt time.Duration, err error) {
	if err == nil {
		m.sent.Inc()
		m.rtt.Observe(rtt.Seconds())
		return
	}
	m.failed.WithLabelValues(sendFailure(err)).Inc()
}

func sendFailure(err error) string {
	switch {
	case errors.Is(err, messaging.ErrUnknownPeer):
		return "unknown-peer"
	case errors.Is(err, messaging.ErrNotMember):
		return "not-member"
	case errors.Is(err, messaging.ErrUnreachable):
		return "unreachable"
	case errors.Is(err, messaging.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, protocol.ErrTooLarge):
		return "too-large"
	case errors.Is(err, messaging.ErrSelf):
		return "self"
	}
	return "other"
}

// reasonClass bounds a verdict's reason to a few values: the reasons are
// worded for people and may quote what the peer said.
func reasonClass(ev events.EvtVerdict) string {
	r := strings.ToLower(ev.Reason)
	switch {
	case ev.State == book.StateMember:
		return ""
	case ev.State == book.StateForeign:
		return "no-handshake"
	case strings.Contains(r, "certificate"):
		return "certificate"
	case strings.Contains(r, "key"):
		return "network-key"
	case strings.Contains(r, "network"):
		return "network"
	case strings.Contains(r, "version"):
		return "version"
	case strings.Contains(r, "malformed"), strings.Contains(r, "decode"), strings.Contains(r, "read"):
		return "malformed"
	}
	return "other"
}

// stateCollector reports what the node holds now, read at each scrape.
type stateCollector struct{ st State }

var (
	peersDesc = prometheus.NewDesc("overlay_peers", "Peers in the peer book by state and path.", []string{"state", "path"}, nil)
	resvDesc  = prometheus.NewDesc("overlay_reservations_held", "Relay reservations this private node holds.", nil, nil)
	svcResv   = prometheus.NewDesc("overlay_relay_service_reservations", "Reservations this relay holds for peers (members' tier).", nil, nil)
	svcCirc   = prometheus.NewDesc("overlay_relay_service_circuits", "Relayed connections open through this relay, both tiers.", nil, nil)
	svcBytes  = prometheus.NewDesc("overlay_relay_service_relayed_bytes_total", "Bytes relayed, both directions, both tiers.", nil, nil)
	strResv   = prometheus.NewDesc("overlay_relay_service_stranger_reservations", "Reservations an open relay holds for non-members (strangers' tier).", nil, nil)
	strCirc   = prometheus.NewDesc("overlay_relay_service_stranger_circuits", "Relayed connections open in the strangers' tier.", nil, nil)
	strBytes  = prometheus.NewDesc("overlay_relay_service_stranger_relayed_bytes_total", "Bytes relayed in the strangers' tier, both directions.", nil, nil)
	refusals  = prometheus.NewDesc("overlay_relay_refusals_total", "What this relay's limits refused or trimmed, by limit.", []string{"limit"}, nil)
	certRef   = prometheus.NewDesc("overlay_certificate_refusals_total",
		"Certificate-mode refusals by code (cert-expired, cert-revoked, cert-required, ...), by who refused (self, peer) and where (handshake, reservation: a relay's check, sweep: a member's certificate lapsed while connected).",
		[]string{"code", "refused_by", "where"}, nil)
	certLeft = prometheus.NewDesc("overlay_certificate_expiry_seconds", "Seconds until this node's certificate expires, negative once expired (certificate mode).", nil, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{peersDesc, resvDesc, svcResv, svcCirc, svcBytes, strResv, strCirc, strBytes, refusals, certRef, certLeft} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ state, path string }
	counts := map[key]int{}
	for _, p := range c.st.Peers() {
		counts[key{string(p.State), string(p.Path)}]++
	}
	for k, v := range counts {
		ch <- prometheus.MustNewConstMetric(peersDesc, prometheus.GaugeValue, float64(v), k.state, k.path)
	}
	ch <- prometheus.MustNewConstMetric(resvDesc, prometheus.GaugeValue, float64(c.st.Reservations()))
	if s := c.st.Certs.StatusOf(); s != nil {
		ch <- prometheus.MustNewConstMetric(certLeft, prometheus.GaugeValue, float64(s.ExpiresIn))
		for k, v := range c.st.Certs.Refusals() {
			ch <- prometheus.MustNewConstMetric(certRef, prometheus.CounterValue, float64(v), k.Code, k.RefusedBy, k.Where)
		}
	}
	st, ok := c.st.Relay()
	if !ok {
		return
	}
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(svcResv, st.Reservations)
	gauge(svcCirc, st.Circuits)
	counter(svcBytes, st.RelayedBytes)
	gauge(strResv, st.StrangerReservations)
	gauge(strCirc, st.StrangerCircuits)
	counter(strBytes, st.StrangerRelayedBytes)
	for limit, v := range st.Refusals {
		ch <- prometheus.MustNewConstMetric(refusals, prometheus.CounterValue, float64(v), limit)
	}
}

// StateCollector returns the collector of st's gauges, as Start registers
// it, for a registry of the caller's own.
func StateCollector(st State) prometheus.Collector { return stateCollector{st} }
