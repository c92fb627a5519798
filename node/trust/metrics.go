package trust

import "github.com/prometheus/client_golang/prometheus"

var (
	offersDesc = prometheus.NewDesc("overlay_trust_offers_total",
		"Revocation lists and policies offered to this node (by a peer or 'overlay ca publish'), by outcome.", []string{"outcome"}, nil)
	versionDesc = prometheus.NewDesc("overlay_trust_version",
		"Version of the CA-signed document this node holds, 0 for none.", []string{"kind"}, nil)
	cutDesc = prometheus.NewDesc("overlay_trust_revoked_cut_total",
		"Peers whose connections this node closed because the CA revoked them.", nil, nil)
)

// collector reads a Store (and its Enforcer) at each scrape.
type collector struct {
	s      *Store
	closed func() int64
}

// Collector returns the store's metrics for a registry: offers by outcome,
// versions held, and closed (the Enforcer's Closed; nil for none).
func (s *Store) Collector(closed func() int64) prometheus.Collector {
	return collector{s: s, closed: closed}
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- offersDesc
	ch <- versionDesc
	ch <- cutDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for o, v := range c.s.Counts() {
		ch <- prometheus.MustNewConstMetric(offersDesc, prometheus.CounterValue, float64(v), string(o))
	}
	rv, pv := c.s.Versions()
	ch <- prometheus.MustNewConstMetric(versionDesc, prometheus.GaugeValue, float64(rv), "revocations")
	ch <- prometheus.MustNewConstMetric(versionDesc, prometheus.GaugeValue, float64(pv), "policy")
	var cut int64
	if c.closed != nil {
		cut = c.closed()
	}
	ch <- prometheus.MustNewConstMetric(cutDesc, prometheus.CounterValue, float64(cut))
}
