package node

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/messaging"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
)

// Metrics returns the node's Prometheus registry, nil when it has none.
func (n *Node) Metrics() *prometheus.Registry { return n.cfg.Metrics }

// metricsHostOptions registers go-libp2p's own collectors (swarm, identify,
// AutoNAT, event bus, resource manager) with the node's registry, and makes
// the overlay's.
func (n *Node) metricsHostOptions() []libp2p.Option {
	if n.cfg.Metrics == nil {
		return nil
	}
	n.metrics = newOverlayMetrics(n.cfg.Metrics)
	return []libp2p.Option{libp2p.PrometheusRegisterer(n.cfg.Metrics)}
}

// rcmgrMetrics feeds libp2p's resource manager collectors; they count only
// what a trace reporter tells them.
func rcmgrMetrics(reg *prometheus.Registry) ([]rcmgr.Option, error) {
	if reg == nil {
		return nil, nil
	}
	str, err := rcmgr.NewStatsTraceReporter()
	if err != nil {
		return nil, err
	}
	return []rcmgr.Option{rcmgr.WithTraceReporter(str)}, nil
}

func (n *Node) relayServiceOptions() []relay.Option {
	if n.cfg.Metrics == nil {
		return nil
	}
	return []relay.Option{relay.WithRegisterer(n.cfg.Metrics)}
}

// overlayMetrics are the overlay's own metrics, fed from the node's events
// and its messenger.
type overlayMetrics struct {
	handshakes *prometheus.CounterVec
	paths      *prometheus.CounterVec
	relayEvts  *prometheus.CounterVec
	renewals   *prometheus.CounterVec
	sent       prometheus.Counter
	failed     *prometheus.CounterVec
	received   prometheus.Counter
	rtt        prometheus.Histogram
	// holepunch is libp2p's, made at start so that its collectors are
	// there before the first punch.
	holepunch holepunch.MetricsTracer
}

func newOverlayMetrics(reg prometheus.Registerer) *overlayMetrics {
	return &overlayMetrics{
		holepunch: holepunch.NewMetricsTracer(holepunch.WithRegisterer(reg)),
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

// startMetrics registers the overlay's metrics and feeds them until the
// node closes.
func (n *Node) startMetrics() error {
	reg, m := n.cfg.Metrics, n.metrics
	if m == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.handshakes, m.paths, m.relayEvts, m.renewals, m.sent, m.failed,
		m.received, m.rtt, stateCollector{n}} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	err := n.follow(new(events.EvtVerdict), func(e any) {
		ev := e.(events.EvtVerdict)
		m.handshakes.WithLabelValues(string(ev.State), reasonClass(ev), ev.RefusedBy).Inc()
	})
	if err == nil {
		err = n.follow(new(events.EvtPath), func(e any) {
			ev := e.(events.EvtPath)
			m.paths.WithLabelValues(string(ev.Prev), string(ev.Path)).Inc()
		})
	}
	if err == nil {
		err = n.follow(new(events.EvtRelay), func(e any) {
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
	n.msgr.SetTracer(m)
	msgs, stop := n.msgr.Subscribe(64)
	n.goRun(func() {
		defer stop()
		for {
			select {
			case <-n.ctx.Done():
				return
			case <-msgs:
				m.received.Inc()
			}
		}
	})
	return nil
}

// MessageSent counts a Send's outcome.
func (m *overlayMetrics) MessageSent(rtt time.Duration, err error) {
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
type stateCollector struct{ n *Node }

var (
	peersDesc = prometheus.NewDesc("overlay_peers", "Peers in the peer book by state and path.", []string{"state", "path"}, nil)
	resvDesc  = prometheus.NewDesc("overlay_reservations_held", "Relay reservations this private node holds.", nil, nil)
	svcResv   = prometheus.NewDesc("overlay_relay_service_reservations", "Reservations this relay holds for peers.", nil, nil)
	svcCirc   = prometheus.NewDesc("overlay_relay_service_circuits", "Relayed connections open through this relay.", nil, nil)
	svcBytes  = prometheus.NewDesc("overlay_relay_service_relayed_bytes_total", "Bytes relayed, both directions.", nil, nil)
	refusals  = prometheus.NewDesc("overlay_relay_refusals_total", "What this relay's limits refused or trimmed, by limit.", []string{"limit"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{peersDesc, resvDesc, svcResv, svcCirc, svcBytes, refusals} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ state, path string }
	counts := map[key]int{}
	for _, p := range c.n.book.List() {
		counts[key{string(p.State), string(p.Path)}]++
	}
	for k, v := range counts {
		ch <- prometheus.MustNewConstMetric(peersDesc, prometheus.GaugeValue, float64(v), k.state, k.path)
	}
	ch <- prometheus.MustNewConstMetric(resvDesc, prometheus.GaugeValue, float64(len(c.n.Reservations())))
	if c.n.relaySvc == nil {
		return
	}
	st := c.n.relaySvc.Stats()
	ch <- prometheus.MustNewConstMetric(svcResv, prometheus.GaugeValue, float64(st.Reservations))
	ch <- prometheus.MustNewConstMetric(svcCirc, prometheus.GaugeValue, float64(st.Circuits))
	ch <- prometheus.MustNewConstMetric(svcBytes, prometheus.CounterValue, float64(st.RelayedBytes))
	for limit, v := range st.Refusals {
		ch <- prometheus.MustNewConstMetric(refusals, prometheus.CounterValue, float64(v), limit)
	}
}
