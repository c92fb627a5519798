package path

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node/netcheck"
)

// Spraying gets two members direct when one side's NAT maps a new port per
// destination (symmetric, MASQUERADE --random-fully: the hard side H) and
// the other's maps endpoint-independently (the easy side E). H's port
// towards E is random and unknown, so E opens its own NAT (which filters by
// address and port) towards every port of H's IP, and learns the port from
// H's probe once it passes (SprayProtocol has the flow). Only the easy side
// sprays, only for a member, one spray at a time.
//
// The cost of one attempt, bounded: E sends at most sprayPorts packets of
// sprayPacketLen bytes (plus IP and UDP headers), sprayRate a second; H
// sends at most maxSprayProbes probes. Each leaves one NAT entry per
// packet on E's routers, which expires as an unanswered UDP flow does (30 s
// on Linux); H's router sees the packets for every other port unsolicited.
const (
	sprayPorts      = 65536 - sprayPortMin
	sprayBatch      = 200                   // packets per tick
	sprayTick       = 10 * time.Millisecond // so 20,000 packets a second
	sprayLinger     = 1500 * time.Millisecond
	sprayProbeEvery = 20 * time.Millisecond
	maxSprayProbes  = 500
	// H's probes go at prePunchTTL (quiet) until E's spray reaches it: one
	// every sprayQuietEvery ticks keeps H's mapping; then sprayAnswers at
	// full TTL (loud) to where the spray came from, one per tick, the
	// first at once.
	sprayQuietEvery = 25
	sprayAnswers    = 5
	// punchLoudFor is how long a punch may send UDP at full TTL after
	// libp2p called FilterRemote: its dial timeout (5 s) and the SYNC wait.
	punchLoudFor = 6 * time.Second
	// udpForget outlasts the conntrack entry an unanswered UDP packet
	// leaves on a router (nf_conntrack_udp_timeout, 30 s on Linux).
	udpForget = 31 * time.Second
	// sprayTimeout bounds one attempt on either side, the dial included.
	sprayTimeout = 20 * time.Second
	sprayDial    = 10 * time.Second
	sprayStep    = 5 * time.Second // deadline of each exchange step
	// maxSprays bounds the attempts per peer (on each side) within
	// repunchWindow.
	maxSprays = 4
	// maxSprayPeers bounds the peers the sprayer remembers.
	maxSprayPeers = 1024
)

// sprayBackoff is the hard side's wait before each attempt while the peer
// stays relayed; a wait after which netcheck has no verdict yet, or the
// peer is not yet a member, is repeated (at most sprayUnknownWaits times),
// not counted.
//
// The second wait is 40 s, not 30: an attempt that failed because the
// easy side's router (no firewall) had a conntrack entry for the hard
// side's port remaps the easy side's spray packet to it to another source
// port, and Linux then gives that port to every new flow from the easy
// side's socket while the remapped entry is the newest of them (NAT reuses
// the mapping of the newest entry with the same source, expired or not
// until conntrack's garbage collector reaps it): the rest of that spray
// leaves from the wrong port, and so would the next one while any of its
// entries (30 s each) is left. Seen in the lab (docs/nat.md).
var sprayBackoff = []time.Duration{
	time.Second, 40 * time.Second, 2 * time.Minute, 10 * time.Minute,
}

// sprayLoudFrom is the first attempt (counting from 0) whose probes are
// loud (full TTL) from the start. A quiet probe dies at the second hop; a
// hard side behind two NATs (a carrier's in front of its router) would
// open only the inner one with it, and no spray could come back through
// the outer. Loud probes reach the outer NAT, at the cost of the open
// router's clash the quiet ones avoid: so the first attempts are quiet,
// the later ones loud.
const sprayLoudFrom = 2

const sprayUnknownWaits = 15

// PacketSocket is the QUIC socket's path for packets that are not QUIC
// (netcheck.Socket).
type PacketSocket interface {
	WriteTo(b []byte, to *net.UDPAddr) (int, error)
	HandleOther(fn func(b []byte, from *net.UDPAddr))
}

// NATInfo is what netcheck found of this node's NAT: Class is one of
// netcheck's Class* values, Mapped the public address of the QUIC socket
// ("ip:port"), "" if unknown.
type NATInfo struct {
	Class, Mapped string
}

// SprayStats counts spraying since the node started (status shows it).
type SprayStats struct {
	// Attempts counts exchanges started, on either side; Refused those the
	// peer (or this node) turned down; Direct those that ended in a direct
	// connection.
	Attempts int64 `json:"attempts"`
	Refused  int64 `json:"refused"`
	Direct   int64 `json:"direct"`
	// Packets counts spray packets sent (the easy side), Probes probes
	// sent (the hard side).
	Packets int64 `json:"packets"`
	Probes  int64 `json:"probes"`
}

type sprayer struct {
	mu   sync.Mutex
	sock PacketSocket // the one HandleOther is registered on
	// hits: where the packets of an attempt (kind and token) came from, on
	// E the probes, on H the spray packets.
	hits map[hitKey]chan netip.AddrPort
	// loud: until when this node may have sent UDP at full TTL to the
	// peer's addresses outside spraying (a punch), for keepSpraying.
	loud map[peer.ID]time.Time
	// quiet sends b from the QUIC socket at prePunchTTL (nil:
	// Manager.sendQuiet; tests replace it).
	quiet    func(b []byte, to netip.AddrPort) error
	busy     bool
	tries    map[peer.ID][]time.Time
	looping  map[peer.ID]struct{}
	peerSaid map[peer.ID]sprayStatus // the last refusal, for Why
	// public says whether an address may be sprayed or dialled.
	public func(netip.Addr) bool
	// portMin and ports are the ports sprayed: [portMin, portMin+ports).
	portMin, ports int
	// dial dials p at the address its probe came from (Manager.sprayDial).
	dial func(ctx context.Context, p peer.ID, from netip.AddrPort) bool

	attempts, refused, direct, packets, probes atomic.Int64
}

type hitKey struct {
	kind  byte
	token [16]byte
}

func newSprayer() *sprayer {
	return &sprayer{hits: map[hitKey]chan netip.AddrPort{}, loud: map[peer.ID]time.Time{}, tries: map[peer.ID][]time.Time{},
		looping: map[peer.ID]struct{}{}, peerSaid: map[peer.ID]sprayStatus{}, public: publicIPv4,
		portMin: sprayPortMin, ports: sprayPorts}
}

// SprayStats counts spraying since the manager started.
func (m *Manager) SprayStats() SprayStats {
	s := m.spray
	return SprayStats{Attempts: s.attempts.Load(), Refused: s.refused.Load(), Direct: s.direct.Load(),
		Packets: s.packets.Load(), Probes: s.probes.Load()}
}

func natClass(c string) sprayClass {
	switch c {
	case netcheck.ClassEndpointIndependent:
		return classEasy
	case netcheck.ClassEndpointDependent:
		return classHard
	case netcheck.ClassUDPBlocked, netcheck.ClassNoUDP:
		return classNoUDP
	}
	return classUnknown
}

func (m *Manager) nat() NATInfo {
	if m.cfg.NAT == nil {
		return NATInfo{Class: netcheck.ClassUnknown}
	}
	return m.cfg.NAT()
}

// packets returns the QUIC socket's packet path with the sprayer's reader
// registered on it; nil if the node has none.
func (m *Manager) packets() PacketSocket {
	if m.cfg.Packets == nil {
		return nil
	}
	sock := m.cfg.Packets()
	if sock == nil {
		return nil
	}
	s := m.spray
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sock != sock {
		s.sock = sock
		sock.HandleOther(s.arrived)
	}
	return sock
}

// arrived takes a non-QUIC packet from the QUIC socket (the socket's
// reader goroutine: it must not block).
func (s *sprayer) arrived(b []byte, from *net.UDPAddr) {
	kind, token, ok := parseSprayPacket(b)
	if !ok {
		return
	}
	ap := from.AddrPort()
	s.mu.Lock()
	ch := s.hits[hitKey{kind, token}]
	s.mu.Unlock()
	if ch != nil {
		select {
		case ch <- netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()):
		default:
		}
	}
}

// maybeSpray starts the hard side's loop for p, a peer now reached only
// through a relay, once per peer. The loop decides from netcheck's verdict
// whether this node is the hard side.
func (m *Manager) maybeSpray(p peer.ID) {
	if m.cfg.Packets == nil || m.cfg.WebSocketOnly || m.ctx.Err() != nil {
		return
	}
	s := m.spray
	s.mu.Lock()
	if _, ok := s.looping[p]; ok {
		s.mu.Unlock()
		return
	}
	s.looping[p] = struct{}{}
	s.mu.Unlock()
	m.goRun(func() {
		defer func() {
			s.mu.Lock()
			delete(s.looping, p)
			s.mu.Unlock()
		}()
		m.keepSpraying(p)
	})
}

// keepSpraying runs the hard side's attempts with p, sprayBackoff apart,
// while p stays relayed, this node's NAT is hard and p has not said that
// spraying cannot help.
//
// The first attempt goes at once (sprayBackoff[0]); each later one also
// waits until the entries this node's own full-TTL UDP packets to p (a
// punch's, before netcheck said the NAT is hard) may have left on p's
// router have expired: a router without a firewall keeps one for each
// flow, and it makes p's spray packet to this node's port take another
// source port, which this node's NAT then drops.
func (m *Manager) keepSpraying(p peer.ID) {
	unknown := 0
	for i := 0; i < len(sprayBackoff); i++ {
		wait := sprayBackoff[i]
		if i > 0 {
			wait = max(wait, m.spray.quietFor(p))
		}
		t := time.NewTimer(wait)
		select {
		case <-m.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if direct, relayed := m.connsByPath(p); direct || len(relayed) == 0 {
			return
		}
		class := natClass(m.nat().Class)
		if class == classUnknown || !m.cfg.Trusted(p) {
			// No verdict yet, or p not yet a member (the handshake runs
			// over this very connection): look again soon.
			if unknown++; unknown > sprayUnknownWaits {
				return
			}
			i--
			continue
		}
		if class != classHard {
			return // not the hard side: the peer sprays, if either
		}
		if !m.spray.allow(p) {
			return
		}
		st, err := m.sprayHard(p, i >= sprayLoudFrom)
		switch {
		case err != nil:
			m.log.Debug("spray failed", "peer", p, "err", err)
		case st == sprayHardToo || st == sprayNoUDP:
			m.log.Debug("spray cannot help", "peer", p, "why", st)
			return
		case st != sprayOK:
			m.log.Debug("spray refused", "peer", p, "why", st)
		}
	}
}

// sprayHard is one attempt on the hard side: ask p to spray, probe from
// the QUIC socket towards p's address until p ends the stream. A nil error
// with sprayOK means the exchange ran, not that it went direct. With loud,
// every probe has full TTL (sprayLoudFrom).
func (m *Manager) sprayHard(p peer.ID, loud bool) (sprayStatus, error) {
	sock := m.packets()
	if sock == nil {
		return 0, errors.New("no QUIC socket")
	}
	mapped, err := netip.ParseAddrPort(m.nat().Mapped)
	if err != nil {
		return 0, fmt.Errorf("own public address %q: %w", m.nat().Mapped, err)
	}
	ctx, cancel := context.WithTimeout(m.ctx, sprayTimeout)
	defer cancel()
	m.spray.attempts.Add(1)
	st, err := m.cfg.Host.NewStream(network.WithAllowLimitedConn(ctx, "spray"), p, SprayProtocol)
	if err != nil {
		return 0, fmt.Errorf("open spray stream: %w", err)
	}
	defer st.Reset() // after Close, a no-op
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	req := sprayRequest{class: classHard, ip: mapped.Addr().Unmap()}
	if _, err := rand.Read(req.token[:]); err != nil {
		return 0, fmt.Errorf("spray token: %w", err)
	}
	_ = st.SetDeadline(time.Now().Add(sprayStep))
	if _, err := st.Write(req.marshal()); err != nil {
		return 0, fmt.Errorf("send spray request: %w", err)
	}
	b := make([]byte, sprayReplyLen)
	if _, err := io.ReadFull(st, b); err != nil {
		return 0, fmt.Errorf("read spray reply: %w", err)
	}
	reply, err := parseSprayReply(b)
	if err != nil {
		return 0, fmt.Errorf("read spray reply: %w", err)
	}
	if reply.status != sprayOK {
		m.spray.refused.Add(1)
		m.spray.said(p, reply.status)
		return reply.status, nil
	}
	if !m.spray.public(reply.addr.Addr()) {
		return 0, fmt.Errorf("spray reply: address %s is not public", reply.addr)
	}
	sprayed := make(chan netip.AddrPort, 1)
	defer m.spray.watch(kindSpray, req.token, sprayed)()
	pr := m.newProber(p, sock, sprayPacket(kindProbe, req.token), reply.addr)
	if loud {
		pr.quiet = nil
	}
	defer func() {
		m.log.Debug("spray attempt ended", "peer", p, "to", reply.addr, "probes", pr.sent,
			"quiet", pr.quiet != nil, "sprayed_from", pr.answerTo)
	}()
	pr.quietOrLoud() // the mapping exists before E sprays
	if _, err := st.Write([]byte{sprayGo}); err != nil {
		return 0, fmt.Errorf("send spray go: %w", err)
	}
	_ = st.SetDeadline(time.Time{})
	done := make(chan struct{})
	go func() { // ends with the stream: Reset by the deferred calls at the latest
		defer close(done)
		_, _ = io.Copy(io.Discard, io.LimitReader(st, 1))
	}()
	tick := time.NewTicker(sprayProbeEvery)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return sprayOK, nil
		case <-ctx.Done():
			return sprayOK, fmt.Errorf("spray: %w", ctx.Err())
		case from := <-sprayed:
			pr.answer(from)
		case <-tick.C:
			pr.tick()
		}
	}
}

// handleSpray is the easy side: answer a hard peer's request, spray its
// IP, and dial the address its probe came from.
func (m *Manager) handleSpray(st network.Stream) {
	p := st.Conn().RemotePeer()
	defer st.Reset() // after Close, a no-op
	ctx, cancel := context.WithTimeout(m.ctx, sprayTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	_ = st.SetDeadline(time.Now().Add(sprayStep))
	b := make([]byte, sprayRequestLen)
	if _, err := io.ReadFull(st, b); err != nil {
		m.log.Debug("spray request", "peer", p, "err", err)
		return
	}
	req, err := parseSprayRequest(b)
	if err != nil {
		m.log.Debug("spray request", "peer", p, "err", err)
		return
	}
	status, mapped, sock := m.sprayVerdict(p, req)
	if status != sprayOK {
		_, _ = st.Write(sprayReply{status: status}.marshal())
		_ = st.Close()
		return
	}
	defer m.spray.endBusy()
	m.spray.attempts.Add(1)
	hit := make(chan netip.AddrPort, 1)
	defer m.spray.watch(kindProbe, req.token, hit)()
	if _, err := st.Write(sprayReply{status: status, addr: mapped}.marshal()); err != nil {
		return
	}
	if _, err := io.ReadFull(st, b[:1]); err != nil || b[0] != sprayGo {
		m.log.Debug("spray go", "peer", p, "err", err)
		return
	}
	_ = st.SetDeadline(time.Time{})
	before := m.spray.packets.Load()
	from, ok := m.sprayPorts(ctx, sock, req, hit)
	m.log.Debug("sprayed", "peer", p, "ip", req.ip, "packets", m.spray.packets.Load()-before, "probe_from", from)
	dial := m.spray.dial
	if dial == nil {
		dial = m.sprayDial
	}
	if ok && dial(ctx, p, from) {
		m.spray.direct.Add(1)
	}
	_ = st.Close()
}

// sprayVerdict decides whether this node sprays for p, and reserves the
// one spray slot when it does.
func (m *Manager) sprayVerdict(p peer.ID, req sprayRequest) (sprayStatus, netip.AddrPort, PacketSocket) {
	if req.class == classHard {
		m.spray.said(p, sprayHardToo) // p's NAT is hard, whatever we answer
	}
	nat := m.nat()
	switch natClass(nat.Class) {
	case classHard:
		return sprayHardToo, netip.AddrPort{}, nil
	case classNoUDP:
		return sprayNoUDP, netip.AddrPort{}, nil
	case classUnknown:
		return sprayUnknownNAT, netip.AddrPort{}, nil
	}
	mapped, err := netip.ParseAddrPort(nat.Mapped)
	sock := m.packets()
	if err != nil || sock == nil || !m.cfg.Trusted(p) || !m.spray.public(req.ip) {
		return sprayUnknownNAT, netip.AddrPort{}, nil
	}
	mapped = netip.AddrPortFrom(mapped.Addr().Unmap(), mapped.Port())
	if !mapped.Addr().Is4() {
		return sprayUnknownNAT, netip.AddrPort{}, nil
	}
	if !m.spray.startBusy() {
		return sprayBusy, netip.AddrPort{}, nil
	}
	if !m.spray.allow(p) {
		m.spray.endBusy()
		return sprayBusy, netip.AddrPort{}, nil
	}
	return sprayOK, mapped, sock
}

// sprayPorts sends one spray packet to each port of req.ip from
// sprayPortMin up, in random order, sprayBatch per sprayTick, and waits
// sprayLinger after the last: it returns the first probe's source address.
func (m *Manager) sprayPorts(ctx context.Context, sock PacketSocket, req sprayRequest, hit <-chan netip.AddrPort) (netip.AddrPort, bool) {
	pkt := sprayPacket(kindSpray, req.token)
	perm := mrand.Perm(m.spray.ports)
	to := &net.UDPAddr{IP: req.ip.AsSlice()}
	tick := time.NewTicker(sprayTick)
	defer tick.Stop()
	for i := 0; i < len(perm); i += sprayBatch {
		for _, off := range perm[i:min(i+sprayBatch, len(perm))] {
			to.Port = m.spray.portMin + off
			if _, err := sock.WriteTo(pkt, to); err == nil {
				m.spray.packets.Add(1)
			}
		}
		select {
		case from := <-hit:
			return from, true
		case <-ctx.Done():
			return netip.AddrPort{}, false
		case <-tick.C:
		}
	}
	t := time.NewTimer(sprayLinger)
	defer t.Stop()
	select {
	case from := <-hit:
		return from, true
	case <-ctx.Done():
	case <-t.C:
	}
	return netip.AddrPort{}, false
}

// sprayDial dials p's QUIC at from, the address its probe came from, over
// the QUIC listen socket (quicreuse dials from it), so the packets leave
// through the NAT entries the spray opened.
func (m *Manager) sprayDial(ctx context.Context, p peer.ID, from netip.AddrPort) bool {
	if !m.spray.public(from.Addr()) {
		return false
	}
	addr, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", from.Addr(), from.Port()))
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, sprayDial)
	defer cancel()
	m.cfg.Host.Peerstore().AddAddr(p, addr, peerstore.TempAddrTTL)
	err = m.cfg.Host.Connect(network.WithForceDirectDial(ctx, "spray"), peer.AddrInfo{ID: p, Addrs: []ma.Multiaddr{addr}})
	if err != nil {
		m.log.Debug("spray dial failed", "peer", p, "to", addr, "err", err)
		return false
	}
	direct, _ := m.connsByPath(p)
	if direct {
		m.log.Info("direct connection by port spraying", "peer", p, "via", addr)
	}
	return direct
}
