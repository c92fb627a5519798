package node

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	msmux "github.com/multiformats/go-multistream"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/protocol"
)

// foreignAfter is how long an inbound connection may go without a handshake
// before its peer is taken for a stock libp2p node.
const foreignAfter = protocol.HandshakeTimeout + 5*time.Second

// stockGrace is how long an inbound peer whose identify lists no handshake
// protocol still has to start one.
const stockGrace = 2 * time.Second

// rejectLinger bounds how long a refusing side waits for the peer to read
// the reason before closing the connection.
const rejectLinger = 2 * time.Second

// IsMember reports whether p passed the handshake in this session, waiting
// for a handshake in progress until ctx is done.
func (n *Node) IsMember(ctx context.Context, p peer.ID) bool {
	s, ok := n.verdicts.Wait(ctx, p)
	return ok && s == book.StateMember
}

// WaitVerdict waits for the outcome of p's handshake in this session.
func (n *Node) WaitVerdict(ctx context.Context, p peer.ID) (book.State, bool) {
	return n.verdicts.Wait(ctx, p)
}

// helloFor is this node's hello to peer to: with a network key, it carries
// the proof made for that peer.
func (n *Node) helloFor(to peer.ID) protocol.Hello {
	h := n.hello()
	if len(n.cfg.NetworkKey) > 0 {
		h.Proof = protocol.NetworkProof(n.cfg.NetworkKey, n.ID(), to)
	}
	return h
}

// checker admits a peer of this network and version that, when the network
// has a key, proves it holds the same key.
func (n *Node) checker(from peer.ID) protocol.Checker {
	// Check compares network and version only; no need to gather addresses.
	local := protocol.Hello{Network: n.cfg.Network, Version: n.cfg.HandshakeVersion}
	return func(remote protocol.Hello) error {
		if err := protocol.Check(local, remote); err != nil {
			return err
		}
		if len(n.cfg.NetworkKey) > 0 {
			return protocol.CheckProof(n.cfg.NetworkKey, remote, from, n.ID())
		}
		return nil
	}
}

func (n *Node) hello() protocol.Hello {
	return protocol.Hello{
		Network: n.cfg.Network,
		Version: n.cfg.HandshakeVersion,
		Role:    n.cfg.Role,
		Agent:   Agent,
		Direct:  capAddrs(n.DirectAddrs()),
		Relayed: capAddrs(n.RelayedAddrs()),
	}
}

func (n *Node) onConnected(c network.Conn) {
	p := c.RemotePeer()
	// A member verdict carries over only while another live connection
	// vouches for it; otherwise a new handshake is due: wait for it.
	others := 0
	for _, oc := range n.host.Network().ConnsToPeer(p) {
		if oc != c && !oc.IsClosed() {
			others++
		}
	}
	n.verdicts.Forget(p, func(s book.State) bool { return others > 0 && s == book.StateMember })
	n.paths.Connected(c)
	if n.ctx.Err() != nil {
		return
	}
	if c.Stat().Direction == network.DirOutbound {
		n.goRun(func() { n.initiate(c) })
	} else {
		n.goRun(func() { n.watchInbound(c) })
	}
}

// onDisconnected forgets a member's verdict once its last connection is
// gone: whoever connects next with that key must pass the handshake again
// before anything trusts it. Other verdicts linger a while (see prune), for
// a Connect waiting on them.
func (n *Node) onDisconnected(c network.Conn) {
	p := c.RemotePeer()
	n.paths.Disconnected(c)
	if len(n.host.Network().ConnsToPeer(p)) > 0 {
		return
	}
	n.unprotect(p)
	n.verdicts.Forget(p, func(s book.State) bool { return s != book.StateMember })
}

// initiate runs the handshake on c itself (not on whichever connection
// NewStream would pick), so every connection is checked.
func (n *Node) initiate(c network.Conn) {
	ctx, cancel := context.WithTimeout(n.ctx, protocol.HandshakeTimeout)
	defer cancel()
	ctx = network.WithAllowLimitedConn(ctx, "overlay handshake")
	s, err := c.NewStream(ctx)
	if err != nil {
		n.log.Debug("open handshake stream", "peer", c.RemotePeer(), "err", err)
		return
	}
	_ = s.SetDeadline(time.Now().Add(protocol.HandshakeTimeout))
	if err := msmux.SelectProtoOrFail(protocol.HandshakeID, s); err != nil {
		s.Reset()
		var ns msmux.ErrNotSupported[string]
		if errors.As(err, &ns) {
			n.markForeign(c, "does not speak "+protocol.HandshakeID)
		} else {
			n.log.Debug("negotiate handshake", "peer", c.RemotePeer(), "err", err)
		}
		return
	}
	_ = s.SetProtocol(protocol.HandshakeID)
	p := c.RemotePeer()
	remote, err := protocol.InitiateWith(s, n.helloFor(p), n.checker(p))
	n.conclude(c, s, remote, err)
}

func (n *Node) handleHandshake(s network.Stream) {
	p := s.Conn().RemotePeer()
	remote, err := protocol.RespondWith(s, n.helloFor(p), n.checker(p))
	n.conclude(s.Conn(), s, remote, err)
}

// watchInbound marks the peer of an inbound connection foreign when it never
// starts a handshake.
func (n *Node) watchInbound(c network.Conn) {
	n.awaitHandshake(c, foreignAfter, "sent no handshake")
}

// awaitHandshake marks the peer of c foreign, for reason, unless a verdict
// on it arrives within d.
func (n *Node) awaitHandshake(c network.Conn, d time.Duration, reason string) {
	ctx, cancel := context.WithTimeout(n.ctx, d)
	defer cancel()
	if _, ok := n.verdicts.Wait(ctx, c.RemotePeer()); ok || n.ctx.Err() != nil || c.IsClosed() {
		return
	}
	n.markForeign(c, reason)
}

func (n *Node) conclude(c network.Conn, s network.Stream, remote protocol.Hello, err error) {
	p := c.RemotePeer()
	var rej *protocol.RejectedError
	switch {
	case err == nil:
		s.Close()
		n.admit(c, remote)
	case errors.As(err, &rej):
		n.reject(c, rej, remote)
		if !rej.ByPeer {
			lingerForPeer(s)
		}
		s.Close()
		c.Close()
	case errors.Is(err, protocol.ErrMalformed) || errors.Is(err, protocol.ErrFrameTooLarge):
		s.Reset()
		n.reject(c, &protocol.RejectedError{Reason: err.Error()}, remote)
		c.Close()
	default:
		// A stall or a dropped connection: say nothing about the peer, but
		// an unverified connection is not kept.
		s.Reset()
		n.log.Debug("handshake failed", "peer", p, "err", err)
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

func (n *Node) admit(c network.Conn, remote protocol.Hello) {
	p := c.RemotePeer()
	ps := n.host.Peerstore()
	ps.AddAddrs(p, remote.Direct, peerstore.AddressTTL)
	ps.AddAddrs(p, remote.Relayed, peerstore.AddressTTL)
	path, _ := n.paths.PathTo(p)
	prev := n.verdicts.Get(p)
	n.protect(p)
	ev := events.EvtVerdict{Peer: p, Conn: c, State: book.StateMember, Role: remote.Role}
	n.recordVerdict(ev, func(pi *book.PeerInfo) {
		pi.Role, pi.State, pi.Reason, pi.RefusedBy = remote.Role, book.StateMember, "", ""
		pi.Agent, pi.Version, pi.Path = remote.Agent, remote.Version, path
		pi.SetAddrs(remote.Direct, remote.Relayed)
	})
	if prev != book.StateMember {
		n.log.Info("peer joined", "peer", p, "role", remote.Role, "path", path)
	}
}

// reject books a refusal, worded for this node: when the peer refused us,
// from our side ("the relay is on network ..."), else as we told the peer.
func (n *Node) reject(c network.Conn, rej *protocol.RejectedError, remote protocol.Hello) {
	p := c.RemotePeer()
	ev := events.EvtVerdict{Peer: p, Conn: c, State: book.StateRejected, Role: remote.Role,
		Reason: rej.Reason, RefusedBy: book.RefusedBySelf}
	if rej.ByPeer {
		ev.RefusedBy = book.RefusedByPeer
		ev.Reason = rej.Refusal.Explain(n.nounFor(p), n.helloFor(p))
	}
	n.recordVerdict(ev, func(pi *book.PeerInfo) {
		if remote.Role != "" {
			pi.Role = remote.Role
		}
		pi.State, pi.Reason, pi.RefusedBy = book.StateRejected, ev.Reason, ev.RefusedBy
	})
	switch {
	case !rej.ByPeer && n.refusals != nil:
		// A relay meets any number of strangers: one line per peer would
		// let a flood of them flood the log too.
		n.log.Debug("refused peer", "peer", p, "reason", ev.Reason)
		n.refusals.Add("handshake-rejected")
	case !rej.ByPeer:
		n.log.Warn("refused peer", "peer", p, "reason", ev.Reason)
	case !n.isRelay(p): // the keeper words a relay's refusal itself
		n.log.Warn("peer refused this node", "peer", p, "reason", ev.Reason)
	}
}

// nounFor names a peer in a refusal: "the relay" for one of this node's
// relays, else "the peer". A hello's role would be a guess that depends on
// which side dialed, so it is not used.
func (n *Node) nounFor(p peer.ID) string {
	if n.isRelay(p) {
		return "the relay"
	}
	return "the peer"
}

func (n *Node) markForeign(c network.Conn, reason string) {
	p := c.RemotePeer()
	if !n.verdicts.SetIfAbsent(p, book.StateForeign) {
		return // a handshake's verdict outranks a guess
	}
	path, _ := n.paths.PathTo(p)
	ev := events.EvtVerdict{Peer: p, Conn: c, State: book.StateForeign, Reason: reason}
	n.recordVerdict(ev, func(pi *book.PeerInfo) {
		pi.State, pi.Reason, pi.Path = book.StateForeign, reason, path
		if c.Stat().Direction == network.DirOutbound {
			pi.MergeAddrs(onlyDirect(n.host.Peerstore().Addrs(p)))
		}
	})
	n.log.Debug("foreign peer (no overlay handshake)", "peer", p, "reason", reason)
	if n.strangers != nil {
		n.strangers.Drop(p)
	}
}

func onlyDirect(as []ma.Multiaddr) []ma.Multiaddr {
	d, _ := book.SplitAddrs(as)
	return d
}

func capAddrs[T any](as []T) []T {
	if len(as) > protocol.MaxAddrs {
		return as[:protocol.MaxAddrs]
	}
	return as
}
