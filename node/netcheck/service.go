package netcheck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"
)

// Periodic runs: the first soon after start (once relays are likely
// connected and identified), then every DefaultEvery; a run that found no
// UDP answer is repeated sooner, retryEvery, as relays may not have been
// reachable yet. A run costs probesPerRelay small packets per relay.
const (
	DefaultFirstAfter = time.Second
	DefaultEvery      = 5 * time.Minute
	retryEvery        = 30 * time.Second
	selfTestTimeout   = 2 * time.Second
)

// Config sets up a Service.
type Config struct {
	Logger *slog.Logger
	// Serve answers probes on the QUIC socket (a relay).
	Serve bool
	// Relays are the relays to probe (full /p2p/ addresses), with the
	// QUIC addresses identify learns for them (Targets); none: the node
	// probes nothing (a relay).
	Relays []ma.Multiaddr
	// WebSocketOnly and PrivateNetwork (--psk) nodes have no QUIC, so no
	// UDP socket: every report says so.
	WebSocketOnly, PrivateNetwork bool
	// FirstAfter and Every pace the periodic runs (defaults above);
	// Timeout bounds each run (DefaultTimeout).
	FirstAfter, Every, Timeout time.Duration
}

// Service runs netcheck for a node: it keeps go-libp2p's QUIC connection
// manager (QUICTransport), opens the shared socket once the node listens
// (Start), serves probes and probes relays periodically. Close stops it.
type Service struct {
	cfg Config
	log *slog.Logger
	capture

	sock   *Socket
	extra  []*Socket // a relay's other QUIC listeners, serving only
	host   host.Host
	off    atomic.Pointer[string] // why nothing is probed, if so
	runMu  sync.Mutex             // one run at a time
	latest atomic.Pointer[Report]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Service; it does nothing until Start.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FirstAfter <= 0 {
		cfg.FirstAfter = DefaultFirstAfter
	}
	if cfg.Every <= 0 {
		cfg.Every = DefaultEvery
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	s := &Service{cfg: cfg, log: cfg.Logger}
	var off string
	switch {
	case cfg.WebSocketOnly:
		off = "--ws-only: this node sends no UDP"
	case cfg.PrivateNetwork:
		off = "--psk: QUIC is off in a private network, this node sends no UDP"
	}
	if off != "" {
		s.off.Store(&off)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Start opens the shared socket of h's QUIC listener, checks that
// non-QUIC packets reach it (SelfTest, in the background: a failure is an
// ERROR line and every report then says so), and starts the periodic
// runs. A node with no QUIC listener starts no socket; its reports say why.
func (s *Service) Start(h host.Host) error {
	if s.off.Load() != nil {
		return nil
	}
	pc, err := s.open(h.Network().ListenAddresses())
	if errors.Is(err, ErrNoQUIC) {
		why := "no QUIC listen address: no UDP socket to probe from"
		s.off.Store(&why)
		return nil
	}
	if err != nil {
		return fmt.Errorf("netcheck: %w", err)
	}
	s.sock = NewSocket(pc, s.cfg.Serve, s.log)
	s.host = h
	if s.cfg.Serve {
		// Every QUIC port answers: a client behind a NAT that maps per
		// destination sees a new port on each, one relay is enough to tell.
		for _, a := range otherQUICAddrs(h.Network().ListenAddresses(), s.sock.LocalAddr(), maxOtherAddrs) {
			pc, err := s.openAddr(a)
			if err != nil {
				s.log.Warn("netcheck: not serving on a QUIC listener", "addr", a, "err", err)
				continue
			}
			s.extra = append(s.extra, NewSocket(pc, true, s.log))
		}
	}
	s.goRun(func() {
		ctx, cancel := context.WithTimeout(s.ctx, selfTestTimeout)
		defer cancel()
		if err := s.sock.SelfTest(ctx); err != nil {
			if s.ctx.Err() == nil {
				s.log.Error("netcheck off: go-libp2p's shared QUIC socket does not pass non-QUIC packets", "err", err)
				why := err.Error()
				s.off.Store(&why)
			}
			return
		}
		if s.probes() {
			s.loop()
		}
	})
	return nil
}

// Socket is the shared socket, nil before Start or without QUIC.
func (s *Service) Socket() *Socket { return s.sock }

// Latest is the last run's report, nil before the first.
func (s *Service) Latest() *Report {
	if off := s.off.Load(); off != nil {
		r := &Report{Error: *off, Relays: []RelayReport{}}
		if s.sock != nil {
			r.Local = s.sock.LocalAddr().String()
		}
		return r
	}
	return s.latest.Load()
}

// Class is the latest report's NAT class (Report.Class).
func (s *Service) Class() string { return s.Latest().Class() }

// probes reports whether the node probes relays (a private node with relays).
func (s *Service) probes() bool { return len(s.cfg.Relays) > 0 && !s.cfg.Serve }

// Gauge is what NAT gauges read (Latest); nil on a node that probes nothing.
func (s *Service) Gauge() func() *Report {
	if !s.probes() {
		return nil
	}
	return s.Latest
}

// Run probes the relays now and keeps the report as the latest.
func (s *Service) Run(ctx context.Context) Report {
	if s.off.Load() != nil {
		return *s.Latest()
	}
	if s.sock == nil || !s.probes() {
		return Report{At: time.Now().UTC(), Error: "netcheck not running: no socket or no relays to probe", Relays: []RelayReport{}}
	}
	s.runMu.Lock()
	defer s.runMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	r := Run(ctx, s.sock, Targets(s.cfg.Relays, s.host.Peerstore(), s.sock.LocalAddr()))
	s.latest.Store(&r)
	s.log.Debug("netcheck", "udp", r.UDP, "class", r.Class(), "mapped", r.Mapped, "preferred", r.Preferred,
		"took_ms", r.TookMs)
	return r
}

func (s *Service) loop() {
	wait := s.cfg.FirstAfter
	var prev string
	for {
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		r := s.Run(s.ctx)
		if s.ctx.Err() != nil {
			return
		}
		if c := r.Class(); c != prev {
			// One line when what a user would act on changes.
			s.log.Info("netcheck: NAT", "class", c, "udp", r.UDP, "mapped", r.Mapped, "preferred_relay", r.Preferred)
			prev = c
		}
		wait = s.cfg.Every
		if !r.UDP {
			wait = min(retryEvery, s.cfg.Every)
		}
	}
}

func (s *Service) goRun(fn func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

// Close stops the runs and the socket and waits for them; call it before
// the host closes. Safe more than once.
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
	if s.sock != nil {
		_ = s.sock.Close()
	}
	for _, x := range s.extra {
		_ = x.Close()
	}
}
