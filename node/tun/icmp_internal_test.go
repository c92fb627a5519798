package tun

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

func udp6(src, dst netip.Addr, payload int) []byte {
	b := make([]byte, header.IPv6MinimumSize+header.UDPMinimumSize+payload)
	header.IPv6(b).Encode(&header.IPv6Fields{PayloadLength: uint16(len(b) - header.IPv6MinimumSize),
		TransportProtocol: header.UDPProtocolNumber, HopLimit: 64,
		SrcAddr: tcpip.AddrFrom16(src.As16()), DstAddr: tcpip.AddrFrom16(dst.As16())})
	header.UDP(b[header.IPv6MinimumSize:]).Encode(&header.UDPFields{SrcPort: 5000, DstPort: 53})
	return b
}

func TestICMPv6Answers(t *testing.T) {
	src, dst := netip.MustParseAddr("fd6f:7665:726c::1"), netip.MustParseAddr("fd6f:7665:726c::2")
	pkt := udp6(src, dst, 2000)
	k, ok := parse(pkt)
	if !ok || k.proto != protoUDP || k.dport != 53 || k.src != src {
		t.Fatalf("parse = %+v %v", k, ok)
	}
	for _, c := range []struct {
		why      refusal
		typ      header.ICMPv6Type
		code     header.ICMPv6Code
		wantsMTU bool
	}{
		{refuseNoMember, header.ICMPv6DstUnreachable, header.ICMPv6AddressUnreachable, false},
		{refuseProhibited, header.ICMPv6DstUnreachable, header.ICMPv6Prohibited, false},
		{refuseTooBig, header.ICMPv6PacketTooBig, 0, true},
	} {
		b := icmpAnswer(pkt, k, c.why, 1420, 16)
		ip := header.IPv6(b[16:])
		if len(ip) > header.IPv6MinimumMTU {
			t.Fatalf("answer of %d bytes, above IPv6's minimum MTU", len(ip))
		}
		if netip.AddrFrom16(ip.SourceAddress().As16()) != dst || netip.AddrFrom16(ip.DestinationAddress().As16()) != src {
			t.Fatalf("answer %s -> %s, want %s -> %s", ip.SourceAddress(), ip.DestinationAddress(), dst, src)
		}
		ic := header.ICMPv6(ip.Payload())
		if ic.Type() != c.typ || ic.Code() != c.code {
			t.Errorf("%d: type %d code %d, want %d %d", c.why, ic.Type(), ic.Code(), c.typ, c.code)
		}
		if c.wantsMTU && ic.MTU() != 1420 {
			t.Errorf("too-big MTU %d, want 1420", ic.MTU())
		}
		xsum := header.PseudoHeaderChecksum(header.ICMPv6ProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(ic)))
		if checksum.Checksum(ic, xsum) != 0xffff {
			t.Errorf("%d: bad ICMPv6 checksum", c.why)
		}
		// An ICMP error is never answered with one.
		ka, _ := parse(ip)
		if icmpAnswer(ip, ka, refuseNoMember, 1420, 0) != nil {
			t.Error("an ICMPv6 error was answered")
		}
	}
}

func TestICMPv4FragNeeded(t *testing.T) {
	src, dst := netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("100.64.0.2")
	b := make([]byte, 1500)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{TotalLength: 1500, TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
		Flags: header.IPv4FlagDontFragment, SrcAddr: tcpip.AddrFrom4(src.As4()), DstAddr: tcpip.AddrFrom4(dst.As4())})
	k, _ := parse(b)
	ans := header.IPv4(icmpAnswer(b, k, refuseTooBig, 1420, 0))
	ic := header.ICMPv4(ans.Payload())
	if !ans.IsChecksumValid() || ic.Type() != header.ICMPv4DstUnreachable || ic.Code() != header.ICMPv4FragmentationNeeded || ic.MTU() != 1420 {
		t.Fatalf("answer: checksum ok %v, type %d code %d mtu %d", ans.IsChecksumValid(), ic.Type(), ic.Code(), ic.MTU())
	}
	if checksum.Checksum(ic, 0) != 0xffff {
		t.Error("bad ICMPv4 checksum")
	}
	// A later fragment has no transport header to quote: unanswered.
	ip.SetFlagsFragmentOffset(0, 1480)
	if k, _ := parse(b); icmpAnswer(b, k, refuseTooBig, 1420, 0) != nil {
		t.Error("a later fragment was answered")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(udp6(netip.MustParseAddr("fd6f:7665:726c::1"), netip.MustParseAddr("fd6f:7665:726c::2"), 10))
	f.Add([]byte{0x45, 0, 0, 20})
	f.Add([]byte{0x4f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, ok := parse(b)
		if !ok {
			return
		}
		if a := icmpAnswer(b, k, refuseNoMember, 1420, 16); a != nil && len(a) > 16+header.IPv6MinimumMTU {
			t.Fatalf("answer of %d bytes", len(a))
		}
	})
}
