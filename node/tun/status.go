package tun

import (
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
)

// Status is what `overlay status` shows of the interface: its mode, name,
// this member's addresses and the engine's counts.
type Status struct {
	Mode  string     `json:"mode"`
	Name  string     `json:"name,omitempty"` // "" in userspace mode
	IPv4  netip.Addr `json:"ipv4"`
	IPv6  netip.Addr `json:"ipv6"`
	MTU   int        `json:"mtu"`
	Stats Stats      `json:"stats"`
}

// Status reports the interface's state now.
func (i *Interface) Status() Status {
	return Status{Mode: i.Mode, Name: i.Name, IPv4: i.cfg.Addr4, IPv6: i.cfg.Addr6, MTU: i.cfg.MTU, Stats: i.Stats()}
}

var (
	packetsDesc = prometheus.NewDesc("overlay_tun_packets_total",
		"IP packets the overlay interface carried, by direction (out: read from the interface and sent to a member; in: from a member, written to the interface).",
		[]string{"dir"}, nil)
	bytesDesc = prometheus.NewDesc("overlay_tun_bytes_total",
		"Bytes of IP packets the overlay interface carried, by direction.", []string{"dir"}, nil)
	dropsDesc = prometheus.NewDesc("overlay_tun_drops_total",
		"IP packets the overlay interface dropped, by reason (denied-out and denied-in: the access policy, answered with ICMP administratively prohibited).",
		[]string{"reason"}, nil)
)

// Collector exports the engine's counts to Prometheus; every drop reason
// is exported, zero included, so a rate query needs no absent-series care.
func (e *Engine) Collector() prometheus.Collector { return engineCollector{e} }

type engineCollector struct{ e *Engine }

func (c engineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- packetsDesc
	ch <- bytesDesc
	ch <- dropsDesc
}

func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	k := &c.e.counts
	ch <- prometheus.MustNewConstMetric(packetsDesc, prometheus.CounterValue, float64(k.pktOut.Load()), "out")
	ch <- prometheus.MustNewConstMetric(packetsDesc, prometheus.CounterValue, float64(k.pktIn.Load()), "in")
	ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(k.bytesOut.Load()), "out")
	ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(k.bytesIn.Load()), "in")
	for d := range numDrops {
		ch <- prometheus.MustNewConstMetric(dropsDesc, prometheus.CounterValue, float64(k.drops[d].Load()), d.String())
	}
}
