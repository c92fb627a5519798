// Package relay runs the circuit-relay v2 service of public nodes and keeps
// the relay reservations of private ones.
package relay

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
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
}

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
		BufferSize: 32 << 10,
	}
}

// Validate reports the first limit that cannot work: a zero count would
// make libp2p refuse everyone, silently.
func (c Config) Validate() error {
	switch {
	case c.MaxReservations <= 0:
		return fmt.Errorf("relay: MaxReservations must be positive, not %d", c.MaxReservations)
	case c.MaxCircuits <= 0:
		return fmt.Errorf("relay: MaxCircuits must be positive, not %d", c.MaxCircuits)
	case c.MaxReservationsPerIP <= 0:
		return fmt.Errorf("relay: MaxReservationsPerIP must be positive, not %d", c.MaxReservationsPerIP)
	case c.ReservationTTL < time.Second:
		return fmt.Errorf("relay: ReservationTTL must be at least 1s, not %s", c.ReservationTTL)
	case c.BufferSize < 512:
		return fmt.Errorf("relay: BufferSize must be at least 512 bytes, not %d", c.BufferSize)
	case c.LimitDuration < 0 || c.LimitData < 0:
		return fmt.Errorf("relay: limits must not be negative (%s, %d)", c.LimitDuration, c.LimitData)
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
	r   *circuit.Relay
	cfg Config
	ref *Refusals

	reservations, circuits atomic.Int64
	relayed                atomic.Int64 // bytes copied, both directions
}

// Stats is what a relay service holds now and has refused so far.
type Stats struct {
	Reservations int64            `json:"reservations"`
	Circuits     int64            `json:"circuits"`
	RelayedBytes int64            `json:"relayed_bytes"`
	Refusals     map[string]int64 `json:"refusals"`
}

// New starts the relay service on h at once (not after AutoNAT). When
// members is non-nil, only members may reserve or open circuits: that keeps
// the uncapped relay bounded against everyone else. Refusals are counted
// and logged through ref (nil: counted only).
func New(h host.Host, cfg Config, members Members, ref *Refusals, opts ...Option) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ref == nil {
		ref = NewRefusals(nil)
	}
	svc := &Service{cfg: cfg, ref: ref}
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
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	copts := []circuit.Option{
		circuit.WithResources(rc),
		circuit.WithMetricsTracer(o.tracer(tracer{svc})),
		// Private and loopback addresses are what tests, containers and
		// LANs use; the stock filter would drop them from reservations.
		circuit.WithReservationAddressFilter(func(a ma.Multiaddr) bool { return true }),
	}
	if members != nil {
		copts = append(copts, circuit.WithACL(memberACL{members}))
	}
	r, err := circuit.New(h, copts...)
	if err != nil {
		return nil, fmt.Errorf("start relay service: %w", err)
	}
	svc.r = r
	return svc, nil
}

// Close stops the service.
func (s *Service) Close() error { return s.r.Close() }

// Stats reports reservations held, circuits open and refusals by limit.
func (s *Service) Stats() Stats {
	return Stats{Reservations: s.reservations.Load(), Circuits: s.circuits.Load(),
		RelayedBytes: s.relayed.Load(), Refusals: s.ref.Counts()}
}

// tracer is the relay's metrics hook, turned into counts and refusals.
type tracer struct{ s *Service }

func (t tracer) RelayStatus(bool)               {}
func (t tracer) ConnectionOpened()              { t.s.circuits.Add(1) }
func (t tracer) ConnectionClosed(time.Duration) { t.s.circuits.Add(-1) }
func (t tracer) BytesTransferred(n int)         { t.s.relayed.Add(int64(n)) }
func (t tracer) ReservationClosed(n int)        { t.s.reservations.Add(-int64(n)) }

func (t tracer) ReservationAllowed(renewal bool) {
	if !renewal {
		t.s.reservations.Add(1)
	}
}

// ReservationRequestHandled names the limit behind a refused reservation.
// libp2p says RESERVATION_REFUSED for both the total and the per-IP cap:
// which one it was is told by whether the relay is full.
func (t tracer) ReservationRequestHandled(st pbv2.Status) {
	switch st {
	case pbv2.Status_OK:
	case pbv2.Status_RESERVATION_REFUSED:
		if t.s.reservations.Load() >= int64(t.s.cfg.MaxReservations) {
			t.s.ref.Add("max-reservations")
		} else {
			t.s.ref.Add("max-reservations-per-ip")
		}
	case pbv2.Status_PERMISSION_DENIED:
		t.s.ref.Add("members-only (reservation)")
	default:
		t.s.ref.Add("reservation " + st.String())
	}
}

func (t tracer) ConnectionRequestHandled(st pbv2.Status) {
	switch st {
	case pbv2.Status_OK:
	case pbv2.Status_RESOURCE_LIMIT_EXCEEDED:
		t.s.ref.Add("max-circuits")
	case pbv2.Status_PERMISSION_DENIED:
		t.s.ref.Add("members-only (circuit)")
	default:
		t.s.ref.Add("circuit " + st.String())
	}
}

type memberACL struct{ m Members }

func (a memberACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool {
	ctx, cancel := context.WithTimeout(context.Background(), aclWait)
	defer cancel()
	return a.m.IsMember(ctx, p)
}

// AllowConnect needs only the source checked: the destination holds a
// reservation, which only members get.
func (a memberACL) AllowConnect(src peer.ID, _ ma.Multiaddr, _ peer.ID) bool {
	ctx, cancel := context.WithTimeout(context.Background(), aclWait)
	defer cancel()
	return a.m.IsMember(ctx, src)
}
