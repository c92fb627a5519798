package path

import (
	"net"
	"net/netip"

	"github.com/libp2p/go-libp2p/core/peer"
)

// prober sends the hard side's probes of one attempt. Quiet (prePunchTTL)
// while nothing came from E: a quiet probe opens and keeps H's own NAT
// mapping towards E's address and dies before E's router. Once E's spray
// packet arrives through that mapping, E's router has an entry for H's
// port, so H answers it loud (full TTL): that probe passes, and E learns
// H's port from it. No full-TTL packet reaches E's router before E's does,
// so a router there without a firewall keeps no entry of its own for the
// flow, which would make E's spray packet to H's port take another source
// port. Without a way to send quietly (no Linux, no QUIC socket known) it
// probes loud every tick, as before.
type prober struct {
	m        *Manager
	p        peer.ID
	sock     PacketSocket
	pkt      []byte
	to       netip.AddrPort // E's public QUIC address, as E said
	quiet    func(b []byte, to netip.AddrPort) error
	n, sent  int            // ticks, probes sent
	answerTo netip.AddrPort // where E's spray came from; zero until then
	answers  int            // loud answers left to send
}

func (m *Manager) newProber(p peer.ID, sock PacketSocket, pkt []byte, to netip.AddrPort) *prober {
	q := m.spray.quiet
	if q == nil {
		q = m.sendQuiet
	}
	return &prober{m: m, p: p, sock: sock, pkt: pkt, to: to, quiet: q}
}

func (pr *prober) send(to netip.AddrPort, loud bool) {
	if pr.sent >= maxSprayProbes {
		return
	}
	var err error
	if loud {
		_, err = pr.sock.WriteTo(pr.pkt, net.UDPAddrFromAddrPort(to))
	} else {
		err = pr.quiet(pr.pkt, to)
	}
	if err == nil {
		pr.sent++
		pr.m.spray.probes.Add(1)
	}
}

// quietOrLoud sends a quiet probe to E, or a loud one (noted, see
// keepSpraying) when this node cannot send quietly.
func (pr *prober) quietOrLoud() {
	if pr.quiet != nil {
		before := pr.sent
		pr.send(pr.to, false)
		if pr.sent > before {
			return
		}
		pr.quiet = nil // cannot: loud from now on
	}
	pr.m.spray.noteLoud(pr.p)
	pr.send(pr.to, true)
}

// answer answers E's first spray packet that arrived, from `from`.
func (pr *prober) answer(from netip.AddrPort) {
	if pr.answerTo.IsValid() {
		return
	}
	pr.answerTo, pr.answers = from, sprayAnswers
	pr.answers--
	pr.send(from, true)
}

func (pr *prober) tick() {
	pr.n++
	switch {
	case pr.answers > 0:
		pr.answers--
		pr.send(pr.answerTo, true)
	case pr.quiet == nil || pr.n%sprayQuietEvery == 0:
		pr.quietOrLoud()
	}
}

// hardNAT says whether netcheck found this node's NAT to map a new port
// per destination.
func (m *Manager) hardNAT() bool { return natClass(m.nat().Class) == classHard }

// sendQuiet sends b from the QUIC listen socket at prePunchTTL: it opens
// this node's NAT mapping and dies at the next hop.
func (m *Manager) sendQuiet(b []byte, to netip.AddrPort) error {
	if m.cfg.Sockets == nil {
		return errNoSocket
	}
	c := m.cfg.Sockets.udpConn(listenUDPPort(m.cfg.Host.Network().ListenAddresses()))
	if c == nil {
		return errNoSocket
	}
	return sendUDPWithTTL(c, b, to, prePunchTTL)
}
