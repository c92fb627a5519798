package path

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendUDPWithTTL sends the datagram b (may be empty) from c to `to` with
// the IP TTL ttl for this packet only (an IP_TTL control message): QUIC's
// own packets on c keep the socket's TTL.
func sendUDPWithTTL(c *net.UDPConn, b []byte, to netip.AddrPort, ttl int) error {
	oob := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_TTL
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], uint32(ttl))
	if _, _, err := c.WriteMsgUDPAddrPort(b, oob, to); err != nil {
		return fmt.Errorf("send to %s with ttl %d: %w", to, ttl, err)
	}
	return nil
}
