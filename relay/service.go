// Package relay runs the circuit-relay v2 service of public nodes and keeps
// the relay reservations of private ones.
package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
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
		// 16 KiB measured ~1.5x the stock 2 KiB on relayed WebSocket;
		// larger buffers were slower again (shared/NOTES.md).
		BufferSize: 16 << 10,
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
	r *circuit.Relay
}

// New starts the relay service on h at once (not after AutoNAT). When
// members is non-nil, only members may reserve or open circuits: that keeps
// the uncapped relay bounded against everyone else.
func New(h host.Host, cfg Config, members Members) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
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
	opts := []circuit.Option{
		circuit.WithResources(rc),
		// Private and loopback addresses are what tests, containers and
		// LANs use; the stock filter would drop them from reservations.
		circuit.WithReservationAddressFilter(func(a ma.Multiaddr) bool { return true }),
	}
	if members != nil {
		opts = append(opts, circuit.WithACL(memberACL{members}))
	}
	r, err := circuit.New(h, opts...)
	if err != nil {
		return nil, fmt.Errorf("start relay service: %w", err)
	}
	return &Service{r: r}, nil
}

// Close stops the service.
func (s *Service) Close() error { return s.r.Close() }

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
