package tun_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"golang.zx2c4.com/wireguard/tun/tuntest"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node/tun"
)

// side is one member in an engine test: a real libp2p host on loopback, a
// channel device, and its engine.
type side struct {
	h      host.Host
	dev    *tuntest.ChannelTUN
	e      *tun.Engine
	v4, v6 netip.Addr
}

// source lists a fixed set of members and connects to them directly.
type source struct {
	self  host.Host
	peers []host.Host
	names map[peer.ID]string
}

func (s *source) Known() []tun.Known {
	var out []tun.Known
	for _, h := range s.peers {
		out = append(out, tun.Known{ID: h.ID(), Name: s.names[h.ID()]})
	}
	return out
}

func (s *source) IsMember(_ context.Context, p peer.ID) bool {
	for _, h := range s.peers {
		if h.ID() == p {
			return true
		}
	}
	return false
}

func (s *source) EnsureMember(ctx context.Context, p peer.ID) error {
	for _, h := range s.peers {
		if h.ID() == p {
			return s.self.Connect(ctx, peer.AddrInfo{ID: p, Addrs: h.Addrs()})
		}
	}
	return errors.New("not a member")
}

type policyFunc func(from, to peer.ID, a cert.Action) error

func (f policyFunc) Allow(from, to peer.ID, a cert.Action) error { return f(from, to, a) }

func newHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// pair starts two members, a and b, with the policies given (nil: none).
func pair(t testing.TB, polA, polB tun.Policy) (a, b *side) {
	t.Helper()
	ha, hb := newHost(t), newHost(t)
	names := map[peer.ID]string{ha.ID(): "alpha", hb.ID(): "beta"}
	mk := func(h, other host.Host, pol tun.Policy) *side {
		s := &side{h: h, dev: tuntest.NewChannelTUN()}
		s.v4, s.v6 = tun.AddrsFor(h.ID(), nil)
		e, err := tun.New(tun.Config{Device: s.dev.TUN(), Host: h, Addr4: s.v4, Addr6: s.v6,
			Members: &source{self: h, peers: []host.Host{other}, names: names}, Policy: pol})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		s.e = e
		return s
	}
	return mk(ha, hb, polA), mk(hb, ha, polB)
}

// recv waits for the next packet the engine writes to s's device.
func (s *side) recv(t testing.TB) []byte {
	t.Helper()
	select {
	case p := <-s.dev.Inbound:
		return p
	case <-time.After(30 * time.Second):
		t.Fatal("no packet on the device within 30 s")
		return nil
	}
}

// send hands p to the engine as if a program had sent it.
func (s *side) send(t testing.TB, p []byte) {
	t.Helper()
	select {
	case s.dev.Outbound <- p:
	case <-time.After(10 * time.Second):
		t.Fatal("the engine did not read from the device")
	}
}

// tcp4 is a TCP segment (SYN) from src:sport to dst:dport.
func tcp4(src, dst netip.Addr, sport, dport uint16) []byte {
	b := make([]byte, header.IPv4MinimumSize+header.TCPMinimumSize)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4(src.As4()), DstAddr: tcpip.AddrFrom4(dst.As4())})
	ip.SetChecksum(^ip.CalculateChecksum())
	header.TCP(b[header.IPv4MinimumSize:]).Encode(&header.TCPFields{SrcPort: sport, DstPort: dport,
		DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagSyn, WindowSize: 65535})
	return b
}

// echo6 is an ICMPv6 echo request from src to dst.
func echo6(src, dst netip.Addr) []byte {
	b := make([]byte, header.IPv6MinimumSize+header.ICMPv6EchoMinimumSize)
	header.IPv6(b).Encode(&header.IPv6Fields{PayloadLength: header.ICMPv6EchoMinimumSize,
		TransportProtocol: header.ICMPv6ProtocolNumber, HopLimit: 64,
		SrcAddr: tcpip.AddrFrom16(src.As16()), DstAddr: tcpip.AddrFrom16(dst.As16())})
	ic := header.ICMPv6(b[header.IPv6MinimumSize:])
	ic.SetType(header.ICMPv6EchoRequest)
	ic.SetIdent(7)
	return b
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPacketsBetweenMembers(t *testing.T) {
	a, b := pair(t, nil, nil)
	ping := tuntest.Ping(b.v4, a.v4)
	a.send(t, ping)
	if got := b.recv(t); string(got) != string(ping) {
		t.Fatalf("b got % x, want % x", got, ping)
	}
	reply := tuntest.Ping(a.v4, b.v4)
	b.send(t, reply)
	if got := a.recv(t); string(got) != string(reply) {
		t.Fatalf("a got % x, want % x", got, reply)
	}
	p6 := echo6(a.v6, b.v6)
	a.send(t, p6)
	if got := b.recv(t); string(got) != string(p6) {
		t.Fatalf("b got % x, want the IPv6 echo % x", got, p6)
	}
	// Many packets, batched: every one arrives, in order on one stream.
	for i := range 200 {
		a.send(t, tcp4(a.v4, b.v4, 40000, uint16(1000+i)))
	}
	for i := range 200 {
		got := header.TCP(header.IPv4(b.recv(t)).Payload())
		if got.DestinationPort() != uint16(1000+i) {
			t.Fatalf("packet %d: port %d", i, got.DestinationPort())
		}
	}
	if s := a.e.Stats(); s.PacketsOut != 202 || s.StreamsOpened != 1 {
		t.Errorf("a's stats %+v: want 202 packets out on 1 stream", s)
	}
}

func TestNonMemberAnsweredUnreachable(t *testing.T) {
	a, _ := pair(t, nil, nil)
	stranger := netip.MustParseAddr("100.64.0.99")
	a.send(t, tuntest.Ping(stranger, a.v4))
	ans := header.IPv4(a.recv(t))
	ic := header.ICMPv4(ans.Payload())
	if ic.Type() != header.ICMPv4DstUnreachable || ic.Code() != header.ICMPv4HostUnreachable {
		t.Fatalf("answer type %d code %d, want host unreachable", ic.Type(), ic.Code())
	}
	if src := netip.AddrFrom4(ans.SourceAddress().As4()); src != stranger || !ans.IsChecksumValid() {
		t.Fatalf("answer from %s (checksum ok: %v), want from %s", src, ans.IsChecksumValid(), stranger)
	}
	// Outside the overlay: dropped, counted, unanswered.
	a.send(t, tuntest.Ping(netip.MustParseAddr("198.51.100.7"), a.v4))
	eventually(t, "off-overlay drop counted", func() bool { return a.e.Stats().Drops["off-overlay"] == 1 })
	if n := a.e.Stats().Drops["no-member"]; n != 1 {
		t.Errorf("no-member drops %d, want 1", n)
	}
}

func TestPolicyDeniesPackets(t *testing.T) {
	noSSH := policyFunc(func(from, to peer.ID, a cert.Action) error {
		if a.Proto == "tcp" && a.Port == 22 {
			return errors.New("no ssh")
		}
		return nil
	})
	// Sending side: answered at once, nothing sent.
	a, b := pair(t, noSSH, nil)
	a.send(t, tcp4(a.v4, b.v4, 40000, 22))
	ic := header.ICMPv4(header.IPv4(a.recv(t)).Payload())
	if ic.Type() != header.ICMPv4DstUnreachable || ic.Code() != header.ICMPv4AdminProhibited {
		t.Fatalf("answer type %d code %d, want administratively prohibited", ic.Type(), ic.Code())
	}
	if n := a.e.Stats().Drops["denied-out"]; n != 1 {
		t.Errorf("denied-out %d, want 1", n)
	}
	// The same count reaches Prometheus, and every reason is exported.
	if got := testutil.CollectAndCount(a.e.Collector()); got != 4+len(tun.DropReasons()) {
		t.Errorf("collector exports %d series, want %d", got, 4+len(tun.DropReasons()))
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(a.e.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if v := dropCount(mfs, "denied-out"); v != 1 {
		t.Errorf("overlay_tun_drops_total{reason=denied-out} = %v, want 1", v)
	}
	// Receiving side: b refuses what a sends, answering through the stream.
	a2, b2 := pair(t, nil, noSSH)
	a2.send(t, tcp4(a2.v4, b2.v4, 40000, 22))
	ans := header.IPv4(a2.recv(t))
	ic = header.ICMPv4(ans.Payload())
	if ic.Code() != header.ICMPv4AdminProhibited || netip.AddrFrom4(ans.SourceAddress().As4()) != b2.v4 {
		t.Fatalf("answer code %d from %s, want administratively prohibited from %s", ic.Code(), ans.SourceAddress(), b2.v4)
	}
	if n := b2.e.Stats().Drops["denied-in"]; n != 1 {
		t.Errorf("b's denied-in %d, want 1", n)
	}
	// An allowed port passes.
	a2.send(t, tcp4(a2.v4, b2.v4, 40000, 80))
	if got := header.TCP(header.IPv4(b2.recv(t)).Payload()); got.DestinationPort() != 80 {
		t.Fatalf("got port %d, want 80", got.DestinationPort())
	}
}

func TestPolicyIsStateful(t *testing.T) {
	// a may reach b's port 80; b may start nothing towards a.
	oneWay := policyFunc(func(from, to peer.ID, a cert.Action) error {
		if a.Proto == "tcp" && a.Port == 80 {
			return nil
		}
		return errors.New("denied")
	})
	a, b := pair(t, oneWay, oneWay)
	a.send(t, tcp4(a.v4, b.v4, 40000, 80))
	b.recv(t)
	b.send(t, tcp4(b.v4, a.v4, 80, 40000)) // the answer: same flow
	if got := header.TCP(header.IPv4(a.recv(t)).Payload()); got.SourcePort() != 80 {
		t.Fatalf("a got a segment from port %d, want b's answer from 80", got.SourcePort())
	}
	b.send(t, tcp4(b.v4, a.v4, 80, 40001)) // not a flow a started
	ic := header.ICMPv4(header.IPv4(b.recv(t)).Payload())
	if ic.Code() != header.ICMPv4AdminProhibited {
		t.Fatalf("code %d, want administratively prohibited", ic.Code())
	}
}

func TestSpoofedSourceDropped(t *testing.T) {
	a, b := pair(t, nil, nil)
	a.send(t, tuntest.Ping(b.v4, netip.MustParseAddr("100.64.0.5")))
	eventually(t, "spoofed drop counted", func() bool { return b.e.Stats().Drops["spoofed"] == 1 })
	a.send(t, tuntest.Ping(b.v4, a.v4))
	if got := header.IPv4(b.recv(t)); netip.AddrFrom4(got.SourceAddress().As4()) != a.v4 {
		t.Fatalf("b got a packet from %s, want only a's own", got.SourceAddress())
	}
}

func TestLookupAndMembers(t *testing.T) {
	a, b := pair(t, nil, nil)
	id := b.h.ID().String()
	// A base58 ID in another case (OpenSSH lowercases host names) too.
	for _, name := range []string{"beta", "BETA", id, strings.ToLower(id), strings.ToUpper(id)} {
		v4, v6, ok := a.e.Lookup(name)
		if !ok || v4 != b.v4 || v6 != b.v6 {
			t.Errorf("Lookup(%q) = %s %s %v, want %s %s", name, v4, v6, ok, b.v4, b.v6)
		}
	}
	if _, _, ok := a.e.Lookup("nobody"); ok {
		t.Error("Lookup(nobody) found someone")
	}
	if v4, _, ok := a.e.Lookup(a.h.ID().String()); !ok || v4 != a.v4 {
		t.Errorf("Lookup(self) = %s %v, want %s", v4, ok, a.v4)
	}
	ms := a.e.Members()
	if len(ms) != 1 || ms[0].ID != b.h.ID() || ms[0].Name != "beta" || ms[0].V4 != b.v4 {
		t.Fatalf("Members() = %+v, want beta", ms)
	}
	// A peer ID looked up before the node knows it becomes routable.
	stranger := newHost(t)
	v4, _, ok := a.e.Lookup(stranger.ID().String())
	if want, _ := tun.AddrsFor(stranger.ID(), nil); !ok || v4 != want {
		t.Fatalf("Lookup(unknown ID) = %s %v, want %s", v4, ok, want)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	a, b := pair(t, nil, nil)
	a.send(t, tuntest.Ping(b.v4, a.v4))
	b.recv(t)
	done := make(chan error, 1)
	go func() { done <- a.e.Close() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := a.e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// dropCount is overlay_tun_drops_total{reason} in mfs; -1 when absent.
func dropCount(mfs []*dto.MetricFamily, reason string) float64 {
	for _, mf := range mfs {
		if mf.GetName() != "overlay_tun_drops_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}
