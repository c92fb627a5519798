package certs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/handshake"
	"github.com/overlay-net/overlay/node/verdict"
	"github.com/overlay-net/overlay/protocol"
)

// This file binds a Manager to its node. Every method is safe on a nil
// *Manager, which is a node outside certificate mode: the node calls them
// without asking which mode it runs in.

// Enabled reports whether cfg asks for certificate mode.
func (cfg Config) Enabled() bool { return len(cfg.CA) > 0 || cfg.CertFile != "" }

// Validate reports what cannot work in cfg, given the node's network key.
func (cfg Config) Validate(networkKey bool) error {
	switch {
	case !cfg.Enabled():
		return nil
	case len(cfg.CA) == 0:
		return errors.New("certificate mode needs the CA's public key (--ca-pub FILE) with --cert")
	case cfg.CertFile == "":
		return errors.New("certificate mode needs this node's certificate (--cert FILE) with --ca-pub")
	case networkKey:
		return errors.New("a network runs in certificate mode (--ca-pub, --cert) or with a network key (--network-key), not both")
	case cfg.WarnBefore < 0:
		return fmt.Errorf("certificate warning time must not be negative, not %s", cfg.WarnBefore)
	}
	return nil
}

// Open starts certificate mode for the node whose key is key and whose
// peer book is b, logging to log unless cfg has a logger: nil and no
// error when cfg does not enable it.
func Open(cfg Config, key crypto.PrivKey, b *book.Book, log *slog.Logger) (*Manager, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	self, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certificate mode: %w", err)
	}
	cfg.Self = self
	m, err := New(cfg)
	if err != nil {
		return nil, err
	}
	m.book = b
	return m, nil
}

// Mode is m as the handshake runner takes it: nil outside certificate mode.
func (m *Manager) Mode() handshake.CertMode {
	if m == nil {
		return nil
	}
	return m
}

// Admit records the certificate of a member the handshake admitted and
// returns the name and groups its book entry shows: the name only if p
// owns it. A peer that lost its name to p has it cleared from the book.
func (m *Manager) Admit(p peer.ID, c *cert.Certificate) (name string, groups []string) {
	if m == nil || c == nil {
		return "", nil
	}
	owns, displaced := m.Members.Admit(p, c)
	if displaced != "" && m.book != nil {
		m.book.Update(displaced, func(pi *book.PeerInfo) { pi.Name = "" })
	}
	if !owns {
		return "", c.Groups
	}
	return c.Name, c.Groups
}

// Refused counts a handshake refusal of a certificate code (cert-*) by
// code and side; other refusals are the handshake counter's alone.
func (m *Manager) Refused(code protocol.RejectCode, byPeer bool) {
	if m == nil || !slices.Contains(protocol.CertCodes, code) {
		return
	}
	m.count(RefusalKey{Code: string(code), RefusedBy: side(byPeer), Where: "handshake"})
}

func side(byPeer bool) string {
	if byPeer {
		return events.RefusedByPeer
	}
	return events.RefusedBySelf
}

// RefusalKey is what a refusal is counted by.
type RefusalKey struct {
	Code      string // a protocol.RejectCode
	RefusedBy string // self or peer
	Where     string // handshake, reservation (a relay's check), or sweep (a member's certificate lapsed)
}

func (k RefusalKey) String() string { return k.Code + " by " + k.RefusedBy + " in " + k.Where }

type refusalCounts struct {
	mu sync.Mutex
	m  map[RefusalKey]int64
}

func (m *Manager) count(k RefusalKey) {
	m.refusals.mu.Lock()
	defer m.refusals.mu.Unlock()
	if m.refusals.m == nil {
		m.refusals.m = map[RefusalKey]int64{}
	}
	m.refusals.m[k]++
}

// Refusals returns the refusals counted so far; nil outside certificate
// mode.
func (m *Manager) Refusals() map[RefusalKey]int64 {
	if m == nil {
		return nil
	}
	m.refusals.mu.Lock()
	defer m.refusals.mu.Unlock()
	return maps.Clone(m.refusals.m)
}

// VouchFunc is the relay's check before a reservation or circuit
// (relay.WithVouch): nil outside certificate mode.
func (m *Manager) VouchFunc() func(peer.ID) error {
	if m == nil {
		return nil
	}
	return func(p peer.ID) error {
		err := m.Members.Vouch(p)
		if err != nil {
			var r *protocol.Refusal
			code := string(protocol.CodeCertMalformed)
			if errors.As(err, &r) {
				code = string(r.Code)
			}
			m.count(RefusalKey{Code: code, RefusedBy: events.RefusedBySelf, Where: "reservation"})
			m.cfg.Logger.Debug("relay refused a request: certificate", "peer", p, "reason", err)
		}
		return err
	}
}

// Start runs the checks of Run on h until ctx ends, in a goroutine go_
// starts: a member whose certificate no longer holds is booked as refused
// (the reason worded for this node) and its connections are closed. Once
// a renewed certificate is in use, every member's connection runs the
// handshake again (rehandshake, in a goroutine go_ starts), so that peers
// hold the renewed certificate, not the one about to expire, and keep the
// connection.
func (m *Manager) Start(ctx context.Context, h host.Host, v *verdict.Table, go_ func(func()), rehandshake func(network.Conn)) {
	if m == nil {
		return
	}
	renewed := func() {
		for _, c := range h.Network().Conns() {
			if v.Get(c.RemotePeer()) == book.StateMember && !c.IsClosed() {
				go_(func() { rehandshake(c) })
			}
		}
	}
	go_(func() {
		m.Run(ctx, renewed, func(iv Invalid) {
			if h.Network().Connectedness(iv.Peer) != network.Connected {
				return
			}
			r := protocol.CertRefusal(iv.Err)
			m.count(RefusalKey{Code: string(r.Code), RefusedBy: events.RefusedBySelf, Where: "sweep"})
			if m.book != nil {
				m.book.Update(iv.Peer, func(pi *book.PeerInfo) {
					pi.State, pi.Reason, pi.RefusedBy = book.StateRejected, r.Reason, book.RefusedBySelf
				})
			}
			v.Set(iv.Peer, book.StateRejected)
			m.cfg.Logger.Warn("member's certificate no longer holds: connections closed", "peer", iv.Peer, "reason", iv.Err)
			_ = h.Network().ClosePeer(iv.Peer)
		})
	})
}

// StatusOf is m's Status, nil outside certificate mode.
func (m *Manager) StatusOf() *Status {
	if m == nil {
		return nil
	}
	s := m.Status()
	for k, v := range m.Refusals() {
		if s.Refusals == nil {
			s.Refusals = map[string]int64{}
		}
		s.Refusals[k.String()] = v
	}
	return &s
}

// Healthy is false once this node's own certificate expired: every peer
// refuses it.
func (m *Manager) Healthy() (bool, string) {
	if m == nil || !m.Expired() {
		return true, ""
	}
	return false, m.Status().Warning
}

// Warnings are the certificate warnings health shows: expiry near, or a
// renewal not used.
func (m *Manager) Warnings() []string {
	if s := m.StatusOf(); s != nil && s.Warning != "" {
		return []string{s.Warning}
	}
	return nil
}
