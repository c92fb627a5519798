package path

import (
	"errors"
	"fmt"
	"net/netip"
)

// SprayProtocol is the stream protocol two members run over their relayed
// connection to go direct when one side's NAT maps a new port per
// destination (spray.go). Version history: 1.0.0, the first.
//
// Protocol flow (H: the hard side, whose NAT maps per destination; E: the
// easy side, endpoint-independent), H opens the stream:
//
//	H -> E  request  version(1) class(1) token(16) H's public IPv4(4)
//	E -> H  reply    status(1) E's public QUIC IPv4(4) port(2, big endian)
//	        status != sprayOK: the stream ends here.
//	H       sends a probe from its QUIC socket to E's address (its NAT
//	        maps a port E does not know), then
//	H -> E  go       sprayGo(1)
//	E       sprays: a spray packet from its QUIC socket to every port of
//	        H's IP in [sprayPortMin, 65535], in random order, paced; each
//	        opens E's NAT for that port. H keeps probing.
//	E       a probe with H's token arrives from H's mapped port: E dials
//	        QUIC there (the QUIC listen socket, so its NAT lets it out).
//	E       closes the stream once the dial has ended or nothing arrived.
const SprayProtocol = "/overlay/spray/1.0.0"

const (
	sprayVersion    = 1
	sprayRequestLen = 1 + 1 + 16 + 4
	sprayReplyLen   = 1 + 4 + 2
	sprayGo         = 0x67
	// sprayPortMin is the lowest port Linux MASQUERADE maps a source port
	// of 1024 or more to; ports below are not sprayed.
	sprayPortMin = 1024
)

// sprayClass is a side's NAT as netcheck found it, on the wire.
type sprayClass byte

const (
	classUnknown sprayClass = iota // no netcheck verdict yet
	classEasy                      // endpoint-independent mapping
	classHard                      // a new port per destination (symmetric)
	classNoUDP                     // UDP blocked, or the node sends none
	classCount
)

// sprayStatus is E's answer to a request.
type sprayStatus byte

const (
	sprayOK         sprayStatus = iota
	sprayHardToo                // E's NAT maps per destination too: no spray beats two
	sprayNoUDP                  // no UDP on E's side
	sprayUnknownNAT             // E does not know its NAT yet (no netcheck verdict)
	sprayBusy                   // E sprays for someone else, or this peer asked too often
	sprayStatusCount
)

func (s sprayStatus) String() string {
	switch s {
	case sprayOK:
		return "ok"
	case sprayHardToo:
		return "symmetric NAT on both sides"
	case sprayNoUDP:
		return "no UDP on the peer's side"
	case sprayUnknownNAT:
		return "the peer does not know its NAT yet"
	case sprayBusy:
		return "the peer is busy"
	}
	return fmt.Sprintf("status %d", byte(s))
}

type sprayRequest struct {
	class sprayClass
	token [16]byte
	ip    netip.Addr // H's public IPv4, the one E sprays
}

func (r sprayRequest) marshal() []byte {
	b := make([]byte, 0, sprayRequestLen)
	b = append(b, sprayVersion, byte(r.class))
	b = append(b, r.token[:]...)
	ip := r.ip.As4()
	return append(b, ip[:]...)
}

var errSprayWire = errors.New("bad spray message")

// parseSprayRequest decodes a request; b must be sprayRequestLen bytes.
func parseSprayRequest(b []byte) (sprayRequest, error) {
	var r sprayRequest
	if len(b) != sprayRequestLen {
		return r, fmt.Errorf("%w: request of %d bytes", errSprayWire, len(b))
	}
	if b[0] != sprayVersion {
		return r, fmt.Errorf("%w: version %d", errSprayWire, b[0])
	}
	if r.class = sprayClass(b[1]); r.class >= classCount {
		return r, fmt.Errorf("%w: class %d", errSprayWire, b[1])
	}
	copy(r.token[:], b[2:18])
	r.ip = netip.AddrFrom4([4]byte(b[18:22]))
	if r.ip.IsUnspecified() {
		return r, fmt.Errorf("%w: address %s", errSprayWire, r.ip)
	}
	return r, nil
}

type sprayReply struct {
	status sprayStatus
	addr   netip.AddrPort // E's public QUIC address, when status is sprayOK
}

func (r sprayReply) marshal() []byte {
	b := make([]byte, sprayReplyLen)
	b[0] = byte(r.status)
	if r.status == sprayOK {
		ip := r.addr.Addr().As4()
		copy(b[1:5], ip[:])
		b[5], b[6] = byte(r.addr.Port()>>8), byte(r.addr.Port())
	}
	return b
}

// parseSprayReply decodes a reply; b must be sprayReplyLen bytes.
func parseSprayReply(b []byte) (sprayReply, error) {
	var r sprayReply
	if len(b) != sprayReplyLen {
		return r, fmt.Errorf("%w: reply of %d bytes", errSprayWire, len(b))
	}
	if r.status = sprayStatus(b[0]); r.status >= sprayStatusCount {
		return r, fmt.Errorf("%w: status %d", errSprayWire, b[0])
	}
	if r.status != sprayOK {
		return r, nil
	}
	r.addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[1:5])), uint16(b[5])<<8|uint16(b[6]))
	if r.addr.Addr().IsUnspecified() || r.addr.Port() == 0 {
		return r, fmt.Errorf("%w: address %s", errSprayWire, r.addr)
	}
	return r, nil
}

// publicIPv4 is what a sprayed or dialled address must be outside tests:
// a public IPv4 address (no private, loopback or shared range).
func publicIPv4(ip netip.Addr) bool {
	return ip.Is4() && ip.IsGlobalUnicast() && !ip.IsPrivate() &&
		!netip.MustParsePrefix("100.64.0.0/10").Contains(ip)
}

// Packets on the QUIC sockets: sprayMagic, a kind, the hard side's token.
// The first byte has bits 0x40 and 0x80 clear, so quic-go hands the packet
// to the non-QUIC reader (netcheck's Socket), and byte 4 is never STUN's
// magic cookie's first byte (0x21), so netcheck passes it on.
const sprayPacketLen = 4 + 1 + 16

var sprayMagic = [4]byte{0x00, 'o', 'v', 's'}

const (
	kindProbe = 1 // H to E: the packet E learns H's mapped port from
	kindSpray = 2 // E to H's IP: opens E's NAT for one port
)

func sprayPacket(kind byte, token [16]byte) []byte {
	b := make([]byte, 0, sprayPacketLen)
	b = append(b, sprayMagic[:]...)
	b = append(b, kind)
	return append(b, token[:]...)
}

// parseSprayPacket reports a packet's kind and token; ok false if it is
// not one of ours.
func parseSprayPacket(b []byte) (kind byte, token [16]byte, ok bool) {
	if len(b) != sprayPacketLen || [4]byte(b[:4]) != sprayMagic || (b[4] != kindProbe && b[4] != kindSpray) {
		return 0, token, false
	}
	copy(token[:], b[5:])
	return b[4], token, true
}
