// Package relay is a public node's circuit-relay v2 server: the service and
// its tiers, whom it serves (ACL), the limits of its host, the gate on
// unfinished handshakes and the counting of refusals. The reservations a
// private node holds on relays are relay/client's.
package relay

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	circuitproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// Config sets the relay service's limits. Stock libp2p cuts every relayed
// connection at 2 minutes or 128 KiB; overlay's defaults let members' traffic
// through uncut and bound the relay by counts instead.
type Config struct {
	// MaxReservations bounds the peers reserved at once.
	MaxReservations int
	// MaxCircuits bounds the relayed connections open per peer.
	MaxCircuits int
	// MaxReservationsPerIP is high because nodes behind one NAT or proxy
	// share a source address.
	MaxReservationsPerIP int
	// ReservationTTL is how long a reservation lasts unless renewed.
	ReservationTTL time.Duration
	// BufferSize is the relay's copy buffer per direction of a circuit.
	BufferSize int
	// LimitDuration cuts a relayed connection after this long; 0 never.
	LimitDuration time.Duration
	// LimitData cuts a relayed connection after this many bytes in one
	// direction; 0 never.
	LimitData int64
	// ACL is whom the relay serves; Allow lists the peers an allowlist
	// relay serves besides members.
	ACL   ACL
	Allow []peer.ID
	// StrangerGrace is how long a peer connected to a relay that does not
	// serve it may stay after it is found to be no member (the node closes
	// its inbound connections then); 0 keeps strangers (libp2p's
	// connection manager alone trims them).
	StrangerGrace time.Duration
}

// DefaultStrangerGrace leaves a stock libp2p peer time for identify, ping
// and a refused relay request (each a round trip or two), while 300 peers
// that connect and stay hold their connections for seconds, not for good.
const DefaultStrangerGrace = 10 * time.Second

// DefaultConfig returns the limits a relay uses unless told otherwise.
func DefaultConfig() Config {
	return Config{
		MaxReservations:      1024,
		MaxCircuits:          64,
		MaxReservationsPerIP: 256,
		ReservationTTL:       time.Hour,
		// 32 KiB: the peers' TLS records are 16 KiB plus framing, so a
		// 16 KiB buffer splits every one of them; 32 KiB cut the relay's
		// writes per MB from 262 to 205 and its CPU per GB by 4-11%, and
		// 64 KiB gained nothing more (docs/datapath.md).
		BufferSize:    32 << 10,
		ACL:           ACLMembers,
		StrangerGrace: DefaultStrangerGrace,
	}
}

// Validate reports the first limit that cannot work: a zero count would
// make libp2p refuse everyone, silently.
func (c Config) Validate() error {
	switch {
	case c.MaxReservations <= 0:
		return fmt.Errorf("relay: max reservations must be positive, not %d", c.MaxReservations)
	case c.MaxCircuits <= 0:
		return fmt.Errorf("relay: max circuits per peer must be positive, not %d", c.MaxCircuits)
	case c.MaxReservationsPerIP <= 0:
		return fmt.Errorf("relay: max reservations per IP must be positive, not %d", c.MaxReservationsPerIP)
	case c.ReservationTTL < time.Second:
		return fmt.Errorf("relay: reservation TTL must be at least 1s, not %s", c.ReservationTTL)
	case c.BufferSize < 512:
		return fmt.Errorf("relay: copy buffer must be at least 512 bytes, not %d", c.BufferSize)
	case c.LimitDuration < 0 || c.LimitData < 0:
		return fmt.Errorf("relay: circuit limits must not be negative (duration %s, data %d)", c.LimitDuration, c.LimitData)
	case c.StrangerGrace < 0:
		return fmt.Errorf("relay: stranger grace must not be negative, not %s", c.StrangerGrace)
	}
	if _, err := ParseACL(string(c.ACL)); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	switch {
	case c.ACL == ACLAllowlist && len(c.Allow) == 0:
		return errors.New("relay: the allowlist ACL needs peer IDs to allow (--relay-allow FILE)")
	case c.ACL != ACLAllowlist && len(c.Allow) > 0:
		return fmt.Errorf("relay: peer IDs to allow were given, but the ACL is %q, not %q", c.ACL, ACLAllowlist)
	}
	return nil
}

// Members answers whether a peer passed the handshake. It may wait for a
// handshake that is still running, up to ctx's deadline.
type Members interface {
	IsMember(ctx context.Context, p peer.ID) bool
}

// aclWait bounds how long a relay request waits for the requester's
// handshake to finish.
const aclWait = 15 * time.Second

// Service is a running circuit-relay v2 service.
type Service struct {
	r         *circuit.Relay // members (and, when allowlisted, the listed peers)
	strangers *circuit.Relay // an open relay's other peers; nil otherwise
	cfg       Config
	ref       *Refusals
	host      host.Host // where the dispatcher is registered, when there is one

	members, others tier
	circuits        atomic.Int64
	relayed         atomic.Int64 // bytes copied, both directions
	guardDenied     atomic.Int64 // guard.go
}

// tier is one circuit.Relay instance's counts and the name its refusals go
// by.
type tier struct {
	prefix       string // "" for members, "strangers " for the others
	max          int
	reservations atomic.Int64
	circuits     atomic.Int64 // strangers' tier only (see tracer)
	relayed      atomic.Int64 // bytes copied, both directions; strangers' tier only
}

// Stats is what a relay service holds now and has refused so far.
type Stats struct {
	Reservations int64 `json:"reservations"`
	// StrangerReservations are those of an open relay's non-members.
	StrangerReservations int64 `json:"stranger_reservations"`
	// Circuits and RelayedBytes count both tiers; the Stranger ones the
	// strangers' tier alone.
	Circuits             int64            `json:"circuits"`
	RelayedBytes         int64            `json:"relayed_bytes"`
	StrangerCircuits     int64            `json:"stranger_circuits"`
	StrangerRelayedBytes int64            `json:"stranger_relayed_bytes"`
	Refusals             map[string]int64 `json:"refusals"`
}

// New starts the relay service on h at once (not after AutoNAT). With
// members set, cfg.ACL says whom it serves (see ACL); nil members serves
// everyone as members. Refusals are counted and logged through ref (nil:
// counted only).
func New(h host.Host, cfg Config, members Members, ref *Refusals, opts ...Option) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ref == nil {
		ref = NewRefusals(nil)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	svc := &Service{cfg: cfg, ref: ref}
	svc.members.max = cfg.MaxReservations
	acl := circuit.ACLFilter(nil)
	if members != nil && cfg.ACL != ACLOpen {
		allow := map[peer.ID]bool{}
		for _, p := range cfg.Allow {
			allow[p] = true
		}
		acl = memberACL{members, allow, o.vouch}
	}
	if members == nil || cfg.ACL != ACLOpen {
		r, err := newInstance(h, memberResources(cfg), svc.guarded(o, acl), o.tracer(tracer{svc, &svc.members}))
		if err != nil {
			return nil, err
		}
		svc.r = r
		return svc, nil
	}
	// An open relay runs two instances, each with its own limits, behind
	// one hop handler that picks the tier by requester and request (tiers.go).
	d := newDispatcher(h, members)
	d.vouch = o.vouch
	rs := circuit.DefaultResources()
	svc.others.prefix, svc.others.max = "strangers ", strangerResources(cfg, &rs)
	var err error
	if svc.r, err = newInstance(d.members, memberResources(cfg), svc.guarded(o, nil), o.tracer(tracer{svc, &svc.members})); err != nil {
		return nil, err
	}
	if svc.strangers, err = newInstance(d.strangers, &rs, svc.guarded(o, nil), o.tracer(tracer{svc, &svc.others})); err != nil {
		svc.r.Close()
		return nil, err
	}
	if err := d.checkTiers(); err != nil {
		svc.r.Close()
		svc.strangers.Close()
		return nil, err
	}
	svc.host = h
	d.register()
	return svc, nil
}

// memberResources are cfg's limits: by default uncut circuits.
func memberResources(cfg Config) *circuit.Resources {
	rc := circuit.DefaultResources()
	rc.MaxReservations = cfg.MaxReservations
	rc.MaxCircuits = cfg.MaxCircuits
	rc.MaxReservationsPerIP = cfg.MaxReservationsPerIP
	rc.MaxReservationsPerASN = cfg.MaxReservationsPerIP
	rc.ReservationTTL = cfg.ReservationTTL
	rc.BufferSize = cfg.BufferSize
	// WithResources replaces Limit too: nil means uncut circuits.
	rc.Limit = nil
	if cfg.LimitDuration > 0 || cfg.LimitData > 0 {
		rc.Limit = &circuit.RelayLimit{Duration: cfg.LimitDuration, Data: cfg.LimitData}
		if rc.Limit.Duration == 0 {
			rc.Limit.Duration = 10 * 365 * 24 * time.Hour
		}
		if rc.Limit.Data == 0 {
			rc.Limit.Data = 1 << 62
		}
	}
	return &rc
}

func newInstance(h host.Host, rc *circuit.Resources, acl circuit.ACLFilter, mt circuit.MetricsTracer) (*circuit.Relay, error) {
	copts := []circuit.Option{
		circuit.WithResources(*rc),
		circuit.WithMetricsTracer(mt),
		// Private and loopback addresses are what tests, containers and
		// LANs use; the stock filter would drop them from reservations.
		circuit.WithReservationAddressFilter(func(a ma.Multiaddr) bool { return true }),
	}
	if acl != nil {
		copts = append(copts, circuit.WithACL(acl))
	}
	r, err := circuit.New(h, copts...)
	if err != nil {
		return nil, fmt.Errorf("start relay service: %w", err)
	}
	return r, nil
}

// Close stops the service.
func (s *Service) Close() error {
	if s.host != nil {
		s.host.RemoveStreamHandler(circuitproto.ProtoIDv2Hop)
	}
	err := s.r.Close()
	if s.strangers != nil {
		err = errors.Join(err, s.strangers.Close())
	}
	return err
}

// Stats reports reservations held, circuits open and refusals by limit.
func (s *Service) Stats() Stats {
	return Stats{Reservations: s.members.reservations.Load(), StrangerReservations: s.others.reservations.Load(),
		Circuits: s.circuits.Load(), RelayedBytes: s.relayed.Load(),
		StrangerCircuits: s.others.circuits.Load(), StrangerRelayedBytes: s.others.relayed.Load(),
		Refusals: s.ref.Counts()}
}

// tracer is the relay's metrics hook, turned into counts and refusals.
type tracer struct {
	s *Service
	t *tier
}

func (t tracer) RelayStatus(bool) {}

// The service counts both tiers' circuits and bytes, and the strangers'
// tier its own too (the members' are the difference: one atomic add per
// write on their data path, not two).

func (t tracer) ConnectionOpened() {
	t.s.circuits.Add(1)
	if t.t != &t.s.members {
		t.t.circuits.Add(1)
	}
}

func (t tracer) ConnectionClosed(time.Duration) {
	t.s.circuits.Add(-1)
	if t.t != &t.s.members {
		t.t.circuits.Add(-1)
	}
}

func (t tracer) BytesTransferred(n int) {
	t.s.relayed.Add(int64(n))
	if t.t != &t.s.members {
		t.t.relayed.Add(int64(n))
	}
}
func (t tracer) ReservationClosed(n int) { t.t.reservations.Add(-int64(n)) }

func (t tracer) ReservationAllowed(renewal bool) {
	if !renewal {
		t.t.reservations.Add(1)
	}
}

// ReservationRequestHandled names the limit behind a refused reservation.
// libp2p says RESERVATION_REFUSED for both the total and the per-IP cap:
// which one it was is told by whether the tier is full.
func (t tracer) ReservationRequestHandled(st pbv2.Status) {
	switch st {
	case pbv2.Status_OK:
	case pbv2.Status_RESERVATION_REFUSED:
		if t.t.reservations.Load() >= int64(t.t.max) {
			t.s.ref.Add(t.t.prefix + "max-reservations")
		} else {
			t.s.ref.Add(t.t.prefix + "max-reservations-per-ip")
		}
	case pbv2.Status_PERMISSION_DENIED:
		if !t.s.takeGuardDenial() {
			t.s.ref.Add(t.s.deniedName() + " (reservation)")
		}
	default:
		t.s.ref.Add(t.t.prefix + "reservation " + st.String())
	}
}

func (t tracer) ConnectionRequestHandled(st pbv2.Status) {
	switch st {
	case pbv2.Status_OK:
	case pbv2.Status_RESOURCE_LIMIT_EXCEEDED:
		t.s.ref.Add(t.t.prefix + "max-circuits")
	case pbv2.Status_PERMISSION_DENIED:
		if !t.s.takeGuardDenial() {
			t.s.ref.Add(t.s.deniedName() + " (circuit)")
		}
	default:
		t.s.ref.Add(t.t.prefix + "circuit " + st.String())
	}
}

// deniedName names the ACL that denied a request.
func (s *Service) deniedName() string {
	if s.cfg.ACL == ACLAllowlist {
		return "members-or-allowlist-only"
	}
	return "members-only"
}
