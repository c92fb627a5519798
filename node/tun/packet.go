package tun

import (
	"encoding/binary"
	"net/netip"
	"strconv"

	"github.com/overlay-net/overlay/cert"
)

// IP protocol numbers the engine looks into.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// ICMP types the flow table treats as one flow per echo identifier.
const (
	icmp4EchoReply   = 0
	icmp4Echo        = 8
	icmp6EchoRequest = 128
	icmp6EchoReply   = 129
)

// packet is what the engine reads from an IP packet's headers. An IPv6
// packet with extension headers is taken at its first next-header value:
// no ports.
type packet struct {
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16 // TCP, UDP; ICMP echo: the identifier in both
	hasPorts     bool
	icmpType     uint8
	icmpErr      bool // an ICMP error message (never answered with one)
	later        bool // an IPv4 fragment after the first: no transport header
}

// parse reads b's headers; ok is false for a packet too short for the
// headers it claims or of an IP version other than 4 and 6.
func parse(b []byte) (p packet, ok bool) {
	if len(b) < 1 {
		return p, false
	}
	var l4 []byte
	switch b[0] >> 4 {
	case 4:
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return p, false
		}
		p.src = netip.AddrFrom4([4]byte(b[12:16]))
		p.dst = netip.AddrFrom4([4]byte(b[16:20]))
		p.proto = b[9]
		p.later = binary.BigEndian.Uint16(b[6:8])&0x1fff != 0
		if !p.later {
			l4 = b[ihl:]
		}
	case 6:
		if len(b) < 40 {
			return p, false
		}
		p.src = netip.AddrFrom16([16]byte(b[8:24]))
		p.dst = netip.AddrFrom16([16]byte(b[24:40]))
		p.proto = b[6]
		l4 = b[40:]
	default:
		return p, false
	}
	switch p.proto {
	case protoTCP, protoUDP:
		if len(l4) >= 4 {
			p.sport = binary.BigEndian.Uint16(l4[0:2])
			p.dport = binary.BigEndian.Uint16(l4[2:4])
			p.hasPorts = true
		}
	case protoICMP, protoICMPv6:
		if len(l4) < 8 {
			break
		}
		p.icmpType = l4[0]
		switch {
		case p.proto == protoICMP && (p.icmpType == icmp4Echo || p.icmpType == icmp4EchoReply),
			p.proto == protoICMPv6 && (p.icmpType == icmp6EchoRequest || p.icmpType == icmp6EchoReply):
			id := binary.BigEndian.Uint16(l4[4:6])
			p.sport, p.dport, p.hasPorts = id, id, true
		case p.proto == protoICMP:
			p.icmpErr = p.icmpType == 3 || p.icmpType == 4 || p.icmpType == 5 || p.icmpType == 11 || p.icmpType == 12
		default:
			p.icmpErr = p.icmpType < 128
		}
	}
	return p, true
}

// action is the access policy's view of the packet.
func (p packet) action() cert.Action {
	a := cert.Action{Kind: cert.ActionIP}
	switch p.proto {
	case protoTCP:
		a.Proto, a.Port = "tcp", p.dport
	case protoUDP:
		a.Proto, a.Port = "udp", p.dport
	case protoICMP, protoICMPv6:
		a.Proto = "icmp"
	default:
		// Only a rule for every protocol covers it.
		a.Proto = "ip-" + strconv.Itoa(int(p.proto))
	}
	return a
}
