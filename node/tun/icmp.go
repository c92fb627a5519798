package tun

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// refusal is why the engine answers a packet with ICMP.
type refusal int

const (
	refuseNoMember    refusal = iota // no member at the address: host (v6: address) unreachable
	refuseProhibited                 // the access policy denies it: administratively prohibited
	refuseTooBig                     // above the MTU: fragmentation needed / packet too big
	refuseUnreachable                // a member, but no path to it now: host unreachable
)

// icmpQuote is how much of the refused packet an answer carries: as much
// as fits in IPv6's minimum MTU (RFC 4443), the same for IPv4 (RFC 1812
// allows more than 8 bytes).
const icmpQuote = header.IPv6MinimumMTU - header.IPv6MinimumSize - header.ICMPv6MinimumSize

// icmpAnswer returns, at offset headroom into a new buffer, the ICMP error
// that answers packet b (parsed as p) for reason why, from p.dst to p.src;
// nil for a packet that must not be answered (an ICMP error, a later
// fragment). mtu is reported in a too-big answer.
func icmpAnswer(b []byte, p packet, why refusal, mtu, headroom int) []byte {
	if p.icmpErr || p.later || !p.src.IsValid() || p.src.IsUnspecified() || p.src.IsMulticast() {
		return nil
	}
	quote := b[:min(len(b), icmpQuote)]
	if p.dst.Is4() {
		return icmp4(quote, p.dst, p.src, why, mtu, headroom)
	}
	return icmp6(quote, p.dst, p.src, why, mtu, headroom)
}

func icmp4(quote []byte, src, dst netip.Addr, why refusal, mtu, headroom int) []byte {
	n := header.IPv4MinimumSize + header.ICMPv4MinimumSize + len(quote)
	buf := make([]byte, headroom+n)
	ip := header.IPv4(buf[headroom:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(n), TTL: 64, Protocol: uint8(header.ICMPv4ProtocolNumber),
		SrcAddr: tcpip.AddrFrom4(src.As4()), DstAddr: tcpip.AddrFrom4(dst.As4())})
	ip.SetChecksum(^ip.CalculateChecksum())
	ic := header.ICMPv4(ip[header.IPv4MinimumSize:])
	ic.SetType(header.ICMPv4DstUnreachable)
	switch why {
	case refuseProhibited:
		ic.SetCode(header.ICMPv4AdminProhibited)
	case refuseTooBig:
		ic.SetCode(header.ICMPv4FragmentationNeeded)
		ic.SetMTU(uint16(mtu))
	default:
		ic.SetCode(header.ICMPv4HostUnreachable)
	}
	copy(ic[header.ICMPv4MinimumSize:], quote)
	ic.SetChecksum(header.ICMPv4Checksum(ic[:header.ICMPv4MinimumSize], checksum.Checksum(quote, 0)))
	return buf
}

func icmp6(quote []byte, src, dst netip.Addr, why refusal, mtu, headroom int) []byte {
	n := header.IPv6MinimumSize + header.ICMPv6MinimumSize + len(quote)
	buf := make([]byte, headroom+n)
	ip := header.IPv6(buf[headroom:])
	s, d := tcpip.AddrFrom16(src.As16()), tcpip.AddrFrom16(dst.As16())
	ip.Encode(&header.IPv6Fields{PayloadLength: uint16(n - header.IPv6MinimumSize),
		TransportProtocol: header.ICMPv6ProtocolNumber, HopLimit: 64, SrcAddr: s, DstAddr: d})
	ic := header.ICMPv6(ip[header.IPv6MinimumSize:])
	switch why {
	case refuseTooBig:
		ic.SetType(header.ICMPv6PacketTooBig)
		ic.SetMTU(uint32(mtu))
	case refuseProhibited:
		ic.SetType(header.ICMPv6DstUnreachable)
		ic.SetCode(header.ICMPv6Prohibited)
	default:
		ic.SetType(header.ICMPv6DstUnreachable)
		ic.SetCode(header.ICMPv6AddressUnreachable)
	}
	copy(ic[header.ICMPv6MinimumSize:], quote)
	ic.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: ic[:header.ICMPv6MinimumSize],
		Src: s, Dst: d, PayloadCsum: checksum.Checksum(quote, 0), PayloadLen: len(quote)}))
	return buf
}
