package path

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendUDPWithTTL sends an empty datagram from c to `to` with the IP TTL
// ttl for this packet only (an IP_TTL control message): QUIC's own packets
// on c keep the socket's TTL.
func sendUDPWithTTL(c *net.UDPConn, to netip.AddrPort, ttl int) error {
	oob := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_TTL
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], uint32(ttl))
	if _, _, err := c.WriteMsgUDPAddrPort(nil, oob, to); err != nil {
		return fmt.Errorf("send to %s with ttl %d: %w", to, ttl, err)
	}
	return nil
}

// synWithTTL sends one TCP SYN from local port lport (shared with the TCP
// listener through SO_REUSEPORT, as go-libp2p's TCP dials share it) to
// `to`, with the IP TTL ttl, and closes the socket at once: a socket closed
// before its handshake completes sends nothing more (no RST, no FIN).
func synWithTTL(lport int, to netip.AddrPort, ttl int) error {
	fd, err := dialSYN(lport, to, ttl)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// dialSYN starts a non-blocking TCP connect from lport to `to` with the IP
// TTL ttl (connect sends the SYN before it returns) and returns the socket.
func dialSYN(lport int, to netip.AddrPort, ttl int) (int, error) {
	if !to.Addr().Is4() {
		return -1, fmt.Errorf("syn to %s: not IPv4", to)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("syn to %s: socket: %w", to, err)
	}
	fail := func(step string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("syn to %s: %s: %w", to, step, err)
	}
	for _, o := range []struct {
		name          string
		level, opt, v int
	}{
		{"SO_REUSEADDR", unix.SOL_SOCKET, unix.SO_REUSEADDR, 1},
		{"SO_REUSEPORT", unix.SOL_SOCKET, unix.SO_REUSEPORT, 1},
		{"IP_TTL", unix.IPPROTO_IP, unix.IP_TTL, ttl},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			return fail("set "+o.name, err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: lport}); err != nil {
		return fail(fmt.Sprintf("bind port %d", lport), err)
	}
	err = unix.Connect(fd, &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()})
	if err != nil && err != unix.EINPROGRESS {
		return fail("connect", err)
	}
	return fd, nil
}
