// Package handshake runs the overlay handshake (protocol/handshake.go) on a
// node's connections: it initiates on outbound ones, answers on inbound
// ones, takes a peer that never starts one for a stock libp2p node, and
// hands each outcome to the node, which books it.
package handshake

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	msmux "github.com/multiformats/go-multistream"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/node/verdict"
	"github.com/overlay-net/overlay/protocol"
)

// ForeignAfter is how long an inbound connection may go without a
// handshake before its peer is taken for a stock libp2p node.
const ForeignAfter = protocol.HandshakeTimeout + 5*time.Second

// StockGrace is how long an inbound peer whose identify lists no handshake
// protocol still has to start one.
const StockGrace = 2 * time.Second

// rejectLinger bounds how long a refusing side waits for the peer to read
// the reason before closing the connection.
const rejectLinger = 2 * time.Second

// Config wires a Runner to its node.
type Config struct {
	// Network and Version are what a peer's hello must match.
	Network string
	Version int
	// Local is this node's hello without a proof, addresses current.
	Local func() protocol.Hello
	// NetworkKey, when set, is proven in every hello and checked in every
	// peer's.
	NetworkKey []byte
	// Certs, when set, runs certificate mode: every hello carries this
	// node's certificate and every peer must present a valid one. Unset,
	// a peer that presents one is refused (another mode).
	Certs    CertMode
	Self     peer.ID
	Verdicts *verdict.Table
	// Noun names a peer in a refusal it sent ("the relay", "the peer").
	Noun func(peer.ID) string
	// Admit books a member (crt: its certificate, nil outside certificate
	// mode); Reject a refusal, worded for this node (byPeer: the peer
	// refused us); Foreign a peer that does not speak the handshake.
	Admit   func(c network.Conn, remote protocol.Hello, crt *cert.Certificate)
	Reject  func(c network.Conn, reason string, byPeer bool, remote protocol.Hello)
	Foreign func(c network.Conn, reason string)
	Logger  *slog.Logger
}

// CertMode is a node's certificate mode (node/certs.Manager).
type CertMode interface {
	// Local is this node's certificate, as the hello carries it.
	Local() []byte
	// Check verifies the certificate of the peer from; a refusal is a
	// *protocol.Refusal.
	Check(from peer.ID, remote protocol.Hello) (*cert.Certificate, error)
	// Refused counts a refusal of either side by its code.
	Refused(code protocol.RejectCode, byPeer bool)
}

// Runner runs the handshake for one node.
type Runner struct{ cfg Config }

// New returns a runner; register Respond for protocol.HandshakeID.
func New(cfg Config) *Runner {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg}
}

// HelloFor is this node's hello to peer to: with a network key, it carries
// the proof made for that peer.
func (r *Runner) HelloFor(to peer.ID) protocol.Hello {
	h := r.cfg.Local()
	if len(r.cfg.NetworkKey) > 0 {
		h.Proof = protocol.NetworkProof(r.cfg.NetworkKey, r.cfg.Self, to)
	}
	if r.cfg.Certs != nil {
		h.Cert = r.cfg.Certs.Local()
	}
	return h
}

// checker admits a peer of this network and version that, when the network
// has a key, proves it holds the same key, and in certificate mode
// presents a valid certificate bound to from (the connection's
// authenticated peer ID). The certificate admitted is left in *crt.
func (r *Runner) checker(from peer.ID, crt **cert.Certificate) protocol.Checker {
	// Check compares network and version only; no need to gather addresses.
	local := protocol.Hello{Network: r.cfg.Network, Version: r.cfg.Version}
	return func(remote protocol.Hello) error {
		if err := protocol.Check(local, remote); err != nil {
			return err
		}
		if r.cfg.Certs == nil {
			if err := protocol.CheckCertMode(false, "", remote); err != nil {
				return err
			}
		} else {
			c, err := r.cfg.Certs.Check(from, remote)
			if err != nil {
				return err
			}
			*crt = c
		}
		if len(r.cfg.NetworkKey) > 0 {
			return protocol.CheckProof(r.cfg.NetworkKey, remote, from, r.cfg.Self)
		}
		return nil
	}
}

// Initiate runs the handshake on c itself (not on whichever connection
// NewStream would pick), so every connection is checked.
func (r *Runner) Initiate(ctx context.Context, c network.Conn) {
	ctx, cancel := context.WithTimeout(ctx, protocol.HandshakeTimeout)
	defer cancel()
	ctx = network.WithAllowLimitedConn(ctx, "overlay handshake")
	s, err := c.NewStream(ctx)
	if err != nil {
		r.cfg.Logger.Debug("open handshake stream", "peer", c.RemotePeer(), "err", err)
		return
	}
	_ = s.SetDeadline(time.Now().Add(protocol.HandshakeTimeout))
	if err := msmux.SelectProtoOrFail(protocol.HandshakeID, s); err != nil {
		s.Reset()
		var ns msmux.ErrNotSupported[string]
		if errors.As(err, &ns) {
			r.markForeign(c, "does not speak "+protocol.HandshakeID)
		} else {
			r.cfg.Logger.Debug("negotiate handshake", "peer", c.RemotePeer(), "err", err)
		}
		return
	}
	_ = s.SetProtocol(protocol.HandshakeID)
	p := c.RemotePeer()
	var crt *cert.Certificate
	remote, err := protocol.InitiateWith(s, r.HelloFor(p), r.checker(p, &crt))
	r.conclude(c, s, remote, crt, err)
}

// Respond answers a peer's handshake: the handler of protocol.HandshakeID.
func (r *Runner) Respond(s network.Stream) {
	p := s.Conn().RemotePeer()
	var crt *cert.Certificate
	remote, err := protocol.RespondWith(s, r.HelloFor(p), r.checker(p, &crt))
	r.conclude(s.Conn(), s, remote, crt, err)
}

// Await marks the peer of c foreign, for reason, unless a verdict on it
// arrives within d (ForeignAfter for an inbound connection, StockGrace
// when identify says the peer has no handshake protocol).
func (r *Runner) Await(ctx context.Context, c network.Conn, d time.Duration, reason string) {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if _, ok := r.cfg.Verdicts.Wait(wctx, c.RemotePeer()); ok || ctx.Err() != nil || c.IsClosed() {
		return
	}
	r.markForeign(c, reason)
}

func (r *Runner) markForeign(c network.Conn, reason string) {
	if !r.cfg.Verdicts.SetIfAbsent(c.RemotePeer(), events.StateForeign) {
		return // a handshake's verdict outranks a guess
	}
	r.cfg.Foreign(c, reason)
}

func (r *Runner) conclude(c network.Conn, s network.Stream, remote protocol.Hello, crt *cert.Certificate, err error) {
	p := c.RemotePeer()
	var rej *protocol.RejectedError
	switch {
	case err == nil:
		s.Close()
		r.cfg.Admit(c, remote, crt)
	case errors.As(err, &rej):
		reason := rej.Reason
		if rej.ByPeer {
			reason = rej.Refusal.Explain(r.cfg.Noun(p), r.HelloFor(p))
		}
		if r.cfg.Certs != nil {
			r.cfg.Certs.Refused(rej.Refusal.Code, rej.ByPeer)
		}
		r.cfg.Reject(c, reason, rej.ByPeer, remote)
		if !rej.ByPeer {
			lingerForPeer(s)
		}
		s.Close()
		c.Close()
	case errors.Is(err, protocol.ErrMalformed) || errors.Is(err, protocol.ErrFrameTooLarge):
		s.Reset()
		r.cfg.Reject(c, err.Error(), false, remote)
		c.Close()
	default:
		// A stall or a dropped connection: say nothing about the peer, but
		// an unverified connection is not kept.
		s.Reset()
		r.cfg.Logger.Debug("handshake failed", "peer", p, "err", err)
		c.Close()
	}
}

// lingerForPeer gives the peer time to read our reject frame: it closes the
// connection after reading it, which ends our read.
func lingerForPeer(s network.Stream) {
	_ = s.CloseWrite()
	_ = s.SetReadDeadline(time.Now().Add(rejectLinger))
	_, _ = io.Copy(io.Discard, io.LimitReader(s, protocol.MaxHelloSize))
}
