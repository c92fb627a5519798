//go:build !linux

package path

import (
	"errors"
	"net"
	"net/netip"
)

// Pre-punching needs Linux's per-packet IP_TTL;
// elsewhere the punch goes without it.

func sendUDPWithTTL(*net.UDPConn, []byte, netip.AddrPort, int) error { return errors.ErrUnsupported }
