package relay

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	circuitproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/x/rate"
	ma "github.com/multiformats/go-multiaddr"
)

// Limits are the connection and stream limits of a relay's host, derived
// from its own settings. Without them, libp2p's default resource manager
// autoscales to about 256 inbound connections on an 24 GiB machine and its
// default connection manager trims above 192: a relay configured for more
// reservations would silently stop short of them (docs/BENCHMARKS.md).
type Limits struct {
	// MaxReservations is the relay's own cap, the figure the rest derive from.
	MaxReservations int `json:"max_reservations"`
	// ConnsInbound: every reserved peer, a quarter more for peers that come
	// and go (circuit sources, peers renewing after a reconnect), and 256
	// for DHT and strangers on a members-only relay.
	ConnsInbound  int `json:"conns_inbound"`
	ConnsOutbound int `json:"conns_outbound"`
	// Streams bounds streams in all: a circuit holds two at the relay (hop
	// from the source, stop to the destination), and each peer has a few of
	// its own (identify, ping, handshake, renewals).
	Streams int `json:"streams"`
	// StrangerStreams bounds the streams of an open relay's strangers'
	// tier (StrangerService): an eighth of Streams, as strangers get an
	// eighth of the reservations, so they cannot take the members' share.
	StrangerStreams int `json:"stranger_streams"`
	// Transient bounds connections still in their security handshake in
	// libp2p's resource manager, which refuses newcomers beyond it.
	Transient int `json:"transient"`
	// Pending and PendingPerIP bound the same connections in the Gate,
	// which closes the oldest to make room instead: kept below Transient,
	// so a flood of silent sockets meets the Gate, not the refusal.
	// PendingTimeout closes a connection still pending after it.
	Pending        int           `json:"pending"`
	PendingPerIP   int           `json:"pending_per_ip"`
	PendingTimeout time.Duration `json:"pending_timeout"`
	// FD is what the connections need of file descriptors.
	FD int `json:"fd"`
	// ConnMgrLow and ConnMgrHigh are the connection manager's watermarks:
	// above High it trims unprotected peers (strangers) down to Low.
	// Members and reserved peers are protected, so they are never trimmed.
	ConnMgrLow  int `json:"connmgr_low"`
	ConnMgrHigh int `json:"connmgr_high"`
	// ConnsPerIP bounds connections from one IPv4 address (or IPv6 /56),
	// and ConnRatePerIP / ConnBurstPerIP new connections per second from
	// it. libp2p's defaults (8 connections, 0.2 per second after a burst of
	// 16) would reset all but 8 of the peers behind one NAT, and after a
	// relay restart let them back one every 5 s; these follow
	// MaxReservationsPerIP instead. Loopback stays unlimited.
	ConnsPerIP     int     `json:"conns_per_ip"`
	ConnRatePerIP  float64 `json:"conn_rate_per_ip"`
	ConnBurstPerIP int     `json:"conn_burst_per_ip"`
	// Scale, when set, adjusts libp2p's scaling limits before the ones
	// above apply: the node raises the stream limits of its own protocols.
	Scale func(*rcmgr.ScalingLimitConfig) `json:"-"`
}

// LimitsFor sizes a relay's host for cfg.
func LimitsFor(cfg Config) Limits {
	peers, perIP := cfg.MaxReservations, cfg.MaxReservationsPerIP
	in := peers + peers/4 + 256
	transient := max(256, peers/8)
	pend := transient / 2
	return Limits{
		MaxReservations: peers,
		ConnsInbound:    in,
		ConnsOutbound:   1024,
		Streams:         8*peers + 4096,
		StrangerStreams: (8*peers + 4096) / 8,
		Transient:       transient,
		Pending:         pend,
		// A quarter of the reservations one IP may hold: peers behind one
		// NAT that reconnect at once (a relay restart) each pend for
		// milliseconds only.
		PendingPerIP:   max(16, min(pend/2, perIP/4)),
		PendingTimeout: DefaultPendingTimeout,
		FD:             in + 1024 + 128,
		ConnMgrLow:     peers + 64,
		ConnMgrHigh:    in,
		ConnsPerIP:     perIP + perIP/4 + 16,
		ConnRatePerIP:  max(1, float64(perIP)/10),
		ConnBurstPerIP: perIP + perIP/4 + 16,
	}
}

// ResourceManager builds libp2p's resource manager with these limits on top
// of its own defaults (memory stays autoscaled from the machine), reporting
// every refusal to ref.
func (l Limits) ResourceManager(ref *Refusals, extra ...rcmgr.Option) (network.ResourceManager, error) {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	if l.Scale != nil {
		l.Scale(&scaling)
	}
	base := scaling.AutoScale()
	v := func(n int) rcmgr.LimitVal { return rcmgr.LimitVal(n) }
	circuitStreams := rcmgr.ResourceLimits{Streams: v(l.Streams / 2), StreamsInbound: v(l.Streams / 2), StreamsOutbound: v(l.Streams / 2)}
	// Every joining peer identifies: a burst of joins needs room, in the
	// protocol's scope and in the identify service's, whose libp2p default
	// is sized for an ordinary host, not for a relay's join bursts.
	identifyStreams := rcmgr.ResourceLimits{Streams: v(2 * l.Transient), StreamsInbound: v(l.Transient), StreamsOutbound: v(l.Transient)}
	partial := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns: v(l.ConnsInbound + l.ConnsOutbound), ConnsInbound: v(l.ConnsInbound), ConnsOutbound: v(l.ConnsOutbound),
			Streams: v(l.Streams), StreamsInbound: v(l.Streams * 3 / 4), StreamsOutbound: v(l.Streams / 2),
			FD: v(l.FD),
		},
		Transient: rcmgr.ResourceLimits{
			Conns: v(2 * l.Transient), ConnsInbound: v(l.Transient), ConnsOutbound: v(l.Transient),
			Streams: v(4 * l.Transient), StreamsInbound: v(2 * l.Transient), StreamsOutbound: v(2 * l.Transient),
			FD: v(l.Transient),
		},
		Service: map[string]rcmgr.ResourceLimits{circuit.ServiceName: circuitStreams, identify.ServiceName: identifyStreams,
			StrangerService: {Streams: v(l.StrangerStreams), StreamsInbound: v(l.StrangerStreams), StreamsOutbound: v(l.StrangerStreams)}},
		Protocol: map[protocol.ID]rcmgr.ResourceLimits{
			circuitproto.ProtoIDv2Hop: circuitStreams, circuitproto.ProtoIDv2Stop: circuitStreams,
			identify.ID: identifyStreams,
		},
	}
	perIP := []rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: l.ConnsPerIP}}
	perIP6 := []rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: l.ConnsPerIP}, {PrefixLength: 48, ConnCount: 8 * l.ConnsPerIP}}
	perIPRate := rate.Limit{RPS: l.ConnRatePerIP, Burst: l.ConnBurstPerIP}
	limiter := &rate.Limiter{
		NetworkPrefixLimits: []rate.PrefixLimit{
			{Prefix: netip.MustParsePrefix("127.0.0.0/8")}, {Prefix: netip.MustParsePrefix("::1/128")},
		},
		SubnetRateLimiter: rate.SubnetLimiter{
			IPv4SubnetLimits: []rate.SubnetLimit{{PrefixLength: 32, Limit: perIPRate}},
			IPv6SubnetLimits: []rate.SubnetLimit{{PrefixLength: 56, Limit: perIPRate}},
			GracePeriod:      time.Minute,
		},
	}
	opts := append([]rcmgr.Option{rcmgr.WithMetrics(rcmgrReporter{ref}),
		rcmgr.WithLimitPerSubnet(perIP, perIP6), rcmgr.WithConnRateLimiters(limiter)}, extra...)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(partial.Build(base)), opts...)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return countingRM{rm, ref}, nil
}

// countingRM counts the two refusals of a new connection that libp2p's
// resource manager does not report to its metrics: the per-IP connection
// count and the per-IP connection rate.
type countingRM struct {
	network.ResourceManager
	ref *Refusals
}

func (c countingRM) OpenConnection(dir network.Direction, usefd bool, ep ma.Multiaddr) (network.ConnManagementScope, error) {
	s, err := c.ResourceManager.OpenConnection(dir, usefd, ep)
	switch {
	case err == nil:
	case strings.Contains(err.Error(), "rate limit exceeded"):
		c.ref.Add("rcmgr-conn-rate-per-ip")
	case strings.Contains(err.Error(), "per ip limit"):
		c.ref.Add("rcmgr-conns-per-ip")
	}
	return s, err
}

// Gate returns the gate that bounds these limits' pending connections.
func (l Limits) Gate(ref *Refusals) *Gate {
	return NewGate(l.Pending, l.PendingPerIP, l.PendingTimeout, ref)
}

// HostOptions are the libp2p options that apply these limits: the resource
// manager, and a connection manager that trims unprotected peers above
// ConnMgrHigh, after a minute's grace for new connections. The transports
// are the caller's: build them with Gate to bound pending connections.
func (l Limits) HostOptions(ref *Refusals, extra ...rcmgr.Option) ([]libp2p.Option, error) {
	rm, err := l.ResourceManager(ref, extra...)
	if err != nil {
		return nil, err
	}
	cm, err := connmgr.NewConnManager(l.ConnMgrLow, l.ConnMgrHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	return []libp2p.Option{libp2p.ResourceManager(rm), libp2p.ConnectionManager(cm)}, nil
}

// FDShortfall reports how many file descriptors the limits need beyond
// what the process may open (0 when enough), so the node can say so at
// start instead of failing at load.
func (l Limits) FDShortfall() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	if need := uint64(l.FD + 64); need > r.Cur {
		return int(need - r.Cur)
	}
	return 0
}

// rcmgrReporter turns the resource manager's blocks into refusals. Allows
// are the hot path and cost nothing.
type rcmgrReporter struct{ ref *Refusals }

func (r rcmgrReporter) AllowConn(network.Direction, bool) {}
func (r rcmgrReporter) BlockConn(dir network.Direction, _ bool) {
	r.ref.Add("rcmgr-conns-" + dirName(dir))
}
func (r rcmgrReporter) AllowStream(peer.ID, network.Direction) {}
func (r rcmgrReporter) BlockStream(_ peer.ID, dir network.Direction) {
	r.ref.Add("rcmgr-streams-" + dirName(dir))
}
func (r rcmgrReporter) AllowPeer(peer.ID)           {}
func (r rcmgrReporter) BlockPeer(peer.ID)           { r.ref.Add("rcmgr-peer") }
func (r rcmgrReporter) AllowProtocol(protocol.ID)   {}
func (r rcmgrReporter) BlockProtocol(p protocol.ID) { r.ref.Add("rcmgr-protocol " + string(p)) }
func (r rcmgrReporter) BlockProtocolPeer(p protocol.ID, _ peer.ID) {
	r.ref.Add("rcmgr-protocol-peer " + string(p))
}
func (r rcmgrReporter) AllowService(string)                  {}
func (r rcmgrReporter) BlockService(s string)                { r.ref.Add("rcmgr-service " + s) }
func (r rcmgrReporter) BlockServicePeer(s string, _ peer.ID) { r.ref.Add("rcmgr-service-peer " + s) }
func (r rcmgrReporter) AllowMemory(int)                      {}
func (r rcmgrReporter) BlockMemory(int)                      { r.ref.Add("rcmgr-memory") }

func dirName(d network.Direction) string {
	if d == network.DirInbound {
		return "inbound"
	}
	return "outbound"
}
