package path

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// ttlReceiver is a loopback UDP socket that reports each datagram's IP TTL
// (IP_RECVTTL).
func ttlReceiver(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVTTL, 1)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return c
}

// readTTL reads one datagram from c and returns its sender and IP TTL.
func readTTL(t *testing.T, c *net.UDPConn) (from netip.AddrPort, size, ttl int) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf, oob := make([]byte, 1500), make([]byte, 128)
	n, oobn, _, from, err := c.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TTL {
			return from, n, int(binary.NativeEndian.Uint32(m.Data))
		}
	}
	t.Fatal("no IP_TTL control message")
	return
}

// The TTL is the packet's alone: the socket's next packet goes with its own.
func TestSendUDPWithTTL(t *testing.T) {
	rx := ttlReceiver(t)
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	if err := sendUDPWithTTL(tx, nil, to, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.WriteToUDPAddrPort([]byte("x"), to); err != nil {
		t.Fatal(err)
	}
	from, size, ttl := readTTL(t, rx)
	if ttl != 2 || size != 0 || from.Port() != uint16(tx.LocalAddr().(*net.UDPAddr).Port) {
		t.Fatalf("pre-punch from %s: %d bytes, ttl %d; want 0 bytes, ttl 2, from port %d", from, size, ttl, tx.LocalAddr().(*net.UDPAddr).Port)
	}
	if _, _, ttl := readTTL(t, rx); ttl == 2 {
		t.Fatal("the socket's next packet kept ttl 2")
	}
	// With a payload (the spray's quiet probe).
	if err := sendUDPWithTTL(tx, []byte("probe"), to, 2); err != nil {
		t.Fatal(err)
	}
	if _, size, ttl := readTTL(t, rx); ttl != 2 || size != 5 {
		t.Fatalf("quiet probe: %d bytes, ttl %d; want 5 bytes, ttl 2", size, ttl)
	}
}

// A private node's host opens its QUIC socket through Sockets (the
// assumption on quicreuse that the UDP pre-punch rests on), and
// FilterRemote sends one low-TTL packet from that socket to each QUIC
// address of the peer (none to the others), returning the addresses
// unchanged.
func TestPrePunchFromQUICSocket(t *testing.T) {
	s := NewSockets()
	h, err := libp2p.New(libp2p.NoTransports, libp2p.Transport(quic.NewTransport), libp2p.Transport(tcp.NewTCPTransport),
		s.QUICReuse(prometheus.NewRegistry()), libp2p.DisableRelay(),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	udpPort := listenUDPPort(h.Network().ListenAddresses())
	if udpPort == 0 || s.udpConn(udpPort) == nil {
		t.Fatalf("QUIC listens on port %d, Sockets knows no socket for it", udpPort)
	}

	rx := ttlReceiver(t)
	to := rx.LocalAddr().(*net.UDPAddr)
	remote := addrs(fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", to.Port),
		"/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/1/ws", "/ip6/::1/udp/1/quic-v1")
	pp := &prePunch{host: h, sockets: s, log: slog.New(slog.DiscardHandler), ttl: 2,
		public: func(ma.Multiaddr) bool { return true }}
	got := pp.FilterRemote(peer.ID("peer"), slices.Clone(remote))
	if !slices.EqualFunc(got, remote, ma.Multiaddr.Equal) {
		t.Fatalf("FilterRemote changed the addresses: %v", got)
	}
	from, size, ttl := readTTL(t, rx)
	if ttl != 2 || size != 0 || int(from.Port()) != udpPort {
		t.Fatalf("pre-punch from %s: %d bytes, ttl %d; want 0 bytes, ttl 2, from the QUIC port %d", from, size, ttl, udpPort)
	}
	if n := pp.sent.Load(); n != 1 {
		t.Fatalf("sent %d pre-punch packets, want 1 (to the QUIC address only)", n)
	}
}

func TestPunchTarget(t *testing.T) {
	for _, c := range []struct {
		in, proto, to string
	}{
		{"/ip4/7.7.1.1/tcp/4001", "tcp", "7.7.1.1:4001"},
		{"/ip4/7.7.1.1/udp/4002/quic-v1", "udp", "7.7.1.1:4002"},
		{"/ip4/7.7.1.1/udp/4002/quic-v1/p2p/12D3KooWGzBtHU8cr9eRgfuHa5J3T3WDiSMjcAG3ffGCT9ccE5gS", "udp", "7.7.1.1:4002"},
		{"/ip4/7.7.1.1/tcp/4001/ws", "", ""},
		{"/ip4/7.7.1.1/udp/4002/quic-v1/webtransport", "", ""},
		{"/ip4/7.7.1.1/udp/4002", "", ""},
		{"/ip6/2001:db8::1/tcp/4001", "", ""},
		{"/dns4/example.com/tcp/4001", "", ""},
	} {
		proto, to, ok := punchTarget(ma.StringCast(c.in))
		if proto != c.proto || ok != (c.proto != "") || ok && to.String() != c.to {
			t.Errorf("punchTarget(%s) = %q %s %v; want %q %s", c.in, proto, to, ok, c.proto, c.to)
		}
	}
}
