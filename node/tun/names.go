package tun

import (
	"context"
	"errors"
	"io"
	"net/netip"

	"github.com/overlay-net/overlay/node/tun/dns"
)

func init() { AddOns = append(AddOns, kernelDNS) }

// kernelDNS serves the overlay's names on a kernel interface: the DNS
// server on the interface's IPv4 address, port 53 (UDP and TCP), and
// systemd-resolved told to send .overlay there. Names are a convenience:
// a server that cannot bind (no CAP_NET_BIND_SERVICE) or a resolved that
// refuses is a warning, and the interface runs on. The userspace mode
// serves DNS inside its stack (userspace_mode.go).
func kernelDNS(i *Interface, o Options) (io.Closer, error) {
	if i.Mode != ModeKernel {
		return nil, nil
	}
	log := i.log
	v4, _ := i.Addrs()
	s := dns.New(dns.Config{Lookup: i.Lookup, Logger: log})
	addr, err := s.Listen(netip.AddrPortFrom(v4, 53))
	if err != nil {
		log.Warn("overlay names: no DNS server", "err", err)
		return nil, nil
	}
	undo, err := dns.RegisterResolved(context.Background(), i.Name, v4, log)
	switch {
	case errors.Is(err, dns.ErrNoResolved):
		log.Info("overlay names: DNS server up; systemd-resolved not running, so point a resolver at it for .overlay", "addr", addr)
	case err != nil:
		log.Warn("overlay names: DNS server up, but systemd-resolved refused the ~overlay domain", "addr", addr, "err", err)
	default:
		log.Info("overlay names: DNS server up, systemd-resolved sends .overlay to it", "addr", addr, "iface", i.Name)
	}
	return closerFunc(func() error { undo(); return s.Close() }), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
