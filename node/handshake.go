package node

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	msmux "github.com/multiformats/go-multistream"

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
	s, ok := n.verdicts.wait(ctx, p)
	return ok && s == StateMember
}

// WaitVerdict waits for the outcome of p's handshake in this session.
func (n *Node) WaitVerdict(ctx context.Context, p peer.ID) (State, bool) {
	return n.verdicts.wait(ctx, p)
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
	n.verdicts.forget(p, func(s State) bool { return others > 0 && s == StateMember })
	n.refreshPath(p)
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
// before anything trusts it. Rejections stay, for a Connect waiting on them.
func (n *Node) onDisconnected(c network.Conn) {
	p := c.RemotePeer()
	n.refreshPath(p)
	if len(n.host.Network().ConnsToPeer(p)) > 0 {
		return
	}
	n.verdicts.forget(p, func(s State) bool { return s != StateMember })
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
	if _, ok := n.verdicts.wait(ctx, c.RemotePeer()); ok || n.ctx.Err() != nil || c.IsClosed() {
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
		n.reject(p, rej.Reason, rej.ByPeer, remote)
		if !rej.ByPeer {
			lingerForPeer(s)
		}
		s.Close()
		c.Close()
	case errors.Is(err, protocol.ErrMalformed) || errors.Is(err, protocol.ErrFrameTooLarge):
		s.Reset()
		n.reject(p, err.Error(), false, remote)
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
	path := n.pathTo(p)
	n.book.Update(p, func(pi *PeerInfo) {
		pi.Role, pi.State, pi.Reason = remote.Role, StateMember, ""
		pi.Agent, pi.Version, pi.Path = remote.Agent, remote.Version, path
		pi.setAddrs(remote.Direct, remote.Relayed)
	})
	if prev := n.verdicts.set(p, StateMember); prev != StateMember {
		n.log.Info("peer joined", "peer", p, "role", remote.Role, "path", path)
	}
}

func (n *Node) reject(p peer.ID, reason string, byPeer bool, remote protocol.Hello) {
	n.book.Update(p, func(pi *PeerInfo) {
		if remote.Role != "" {
			pi.Role = remote.Role
		}
		pi.State, pi.Reason = StateRejected, reason
	})
	n.verdicts.set(p, StateRejected)
	if byPeer {
		n.log.Warn("refused by peer", "peer", p, "reason", reason)
	} else {
		n.log.Warn("refused peer", "peer", p, "reason", reason)
	}
}

func (n *Node) markForeign(c network.Conn, reason string) {
	p := c.RemotePeer()
	if !n.verdicts.setIfAbsent(p, StateForeign) {
		return // a handshake's verdict outranks a guess
	}
	path := n.pathTo(p)
	n.book.Update(p, func(pi *PeerInfo) {
		pi.State, pi.Reason, pi.Path = StateForeign, reason, path
		if c.Stat().Direction == network.DirOutbound {
			pi.Direct = mergeAddrs(pi.Direct, onlyDirect(n.host.Peerstore().Addrs(p)))
		}
	})
	n.log.Info("foreign peer (no overlay handshake)", "peer", p, "reason", reason)
}

// pathTo says how p is reached now: direct beats relayed.
func (n *Node) pathTo(p peer.ID) Path {
	path := PathNone
	for _, c := range n.host.Network().ConnsToPeer(p) {
		if c.IsClosed() {
			continue
		}
		if !IsRelayed(c.RemoteMultiaddr()) {
			return PathDirect
		}
		path = PathRelayed
	}
	return path
}

func (n *Node) refreshPath(p peer.ID) { n.book.SetPath(p, n.pathTo(p)) }

func capAddrs[T any](as []T) []T {
	if len(as) > protocol.MaxAddrs {
		return as[:protocol.MaxAddrs]
	}
	return as
}
