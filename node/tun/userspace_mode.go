package tun

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/overlay-net/overlay/node/tun/dns"
	"github.com/overlay-net/overlay/node/tun/proxy"
)

func init() { StartUserspace = startUserspace }

// userspaceAddOns are what the userspace mode runs around its stack: the
// proxies on the host's loopback and the DNS server inside the stack.
// Closing them leaves the stack to the engine, which closes its device.
type userspaceAddOns struct {
	stack       *Userspace
	proxy       *proxy.Server
	dns         *dns.Server
	socks, http net.Addr
}

func (a *userspaceAddOns) Close() error {
	a.proxy.Close()
	a.dns.Close()
	return nil
}

// startUserspace is the userspace mode (Start with ModeUserspace): a
// netstack with the node's addresses, an engine on it, the DNS server on
// the stack's IPv4 address, port 53, for other members, and the proxies
// that Options ask for on the host, resolving names as the DNS server does.
func startUserspace(o Options, d Deps) (*Interface, error) {
	mtu := cmp.Or(o.MTU, DefaultMTU)
	v4, v6 := AddrsFor(d.Host.ID(), d.Own)
	stack, err := NewUserspace([]netip.Addr{v4, v6}, mtu)
	if err != nil {
		return nil, err
	}
	e, err := New(Config{Device: stack.Device(), Host: d.Host, Addr4: v4, Addr6: v6, MTU: mtu,
		Logger: d.Logger, Members: d.Members, Policy: d.Policy})
	if err != nil {
		stack.Close()
		return nil, err
	}
	a := &userspaceAddOns{stack: stack}
	fail := func(err error) (*Interface, error) {
		if a.proxy != nil {
			a.proxy.Close()
		}
		if a.dns != nil {
			a.dns.Close()
		}
		e.Close()
		return nil, err
	}
	a.dns = dns.New(dns.Config{Lookup: e.Lookup, Logger: d.Logger})
	if err := serveDNSInStack(a.dns, stack, v4); err != nil {
		return fail(err)
	}
	a.proxy = proxy.New(proxy.Config{
		Dial:    stack.DialContext,
		Resolve: func(host string) (netip.Addr, netip.Addr, bool) { return dns.Resolve(e.Lookup, host) },
		Logger:  d.Logger,
	})
	for _, p := range []struct {
		addr  string
		what  string
		serve func(net.Listener) error
		bound *net.Addr
	}{
		{o.SOCKS, "SOCKS5 proxy", a.proxy.ServeSOCKS5, &a.socks},
		{o.HTTP, "HTTP proxy", a.proxy.ServeHTTPProxy, &a.http},
	} {
		if p.addr == "" {
			continue
		}
		l, err := net.Listen("tcp", p.addr)
		if err != nil {
			return fail(fmt.Errorf("userspace overlay: %s: %w", p.what, err))
		}
		if err := p.serve(l); err != nil {
			l.Close()
			return fail(err)
		}
		*p.bound = l.Addr()
		if ap, err := netip.ParseAddrPort(l.Addr().String()); err == nil && !ap.Addr().IsLoopback() {
			d.Logger.Warn("proxy listens beyond loopback and has no authentication: anyone who reaches it reaches the overlay",
				"proxy", p.what, "addr", l.Addr())
		}
	}
	for _, port := range o.Accept {
		if err := acceptPort(a.proxy, stack, port); err != nil {
			return fail(err)
		}
	}
	d.Logger.Info("userspace overlay up", "ipv4", v4, "ipv6", v6, "mtu", mtu,
		"socks5", addrOrNone(a.socks), "http_proxy", addrOrNone(a.http), "accept", o.Accept)
	return NewInterface(e, ModeUserspace, "", a), nil
}

// acceptPort lets members connect to port on the stack's addresses and
// carries each connection to the same port on the host's loopback (IPv4,
// then IPv6): what a service listening on the overlay address would get
// in kernel mode. The access policy applies to the packets before.
func acceptPort(p *proxy.Server, stack *Userspace, port uint16) error {
	if port == 0 {
		return errors.New("userspace overlay: accept port 0")
	}
	ps := strconv.Itoa(int(port))
	for _, a := range stack.Addrs() {
		l, err := stack.Net().ListenTCPAddrPort(netip.AddrPortFrom(a, port))
		if err != nil {
			return fmt.Errorf("userspace overlay: accept port %d on %s: %w", port, a, err)
		}
		if err := p.ServeForward(l, net.JoinHostPort("127.0.0.1", ps), net.JoinHostPort("::1", ps)); err != nil {
			l.Close()
			return err
		}
	}
	return nil
}

// serveDNSInStack serves s on addr, port 53, UDP and TCP, inside the stack.
func serveDNSInStack(s *dns.Server, stack *Userspace, addr netip.Addr) error {
	ap := netip.AddrPortFrom(addr, 53)
	pc, err := stack.Net().ListenUDPAddrPort(ap)
	if err != nil {
		return fmt.Errorf("userspace overlay: dns: listen udp %s: %w", ap, err)
	}
	l, err := stack.Net().ListenTCPAddrPort(ap)
	if err != nil {
		pc.Close()
		return fmt.Errorf("userspace overlay: dns: listen tcp %s: %w", ap, err)
	}
	if err := s.Serve(pc, l); err != nil {
		pc.Close()
		l.Close()
		return err
	}
	return nil
}

func addrOrNone(a net.Addr) string {
	if a == nil {
		return "none"
	}
	return a.String()
}

// Userspace returns the interface's stack, and the addresses its SOCKS5
// and HTTP proxies listen on (nil for one not running); the stack is nil
// outside the userspace mode.
func (i *Interface) Userspace() (stack *Userspace, socks, http net.Addr) {
	for _, c := range i.closers {
		if a, ok := c.(*userspaceAddOns); ok {
			return a.stack, a.socks, a.http
		}
	}
	return nil, nil, nil
}
