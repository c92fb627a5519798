package tun

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	wgtun "golang.zx2c4.com/wireguard/tun"
)

// startKernel brings up a Linux TUN interface: it deletes a TUN interface
// of the same name left behind (by a SIGKILL), creates one with the
// offloads wireguard-go's tun package enables (GSO/GRO), gives it the
// node's two addresses, routes the overlay prefixes to it, and starts an
// engine on it. Nothing else on the host changes; Close removes the
// interface, and the kernel its routes with it.
func startKernel(o Options, d Deps) (*Interface, error) {
	name := cmp.Or(o.Name, DefaultName)
	mtu := cmp.Or(o.MTU, DefaultMTU)
	v4, v6 := AddrsFor(d.Host.ID(), d.Own)
	if err := removeStale(name, d); err != nil {
		return nil, err
	}
	dev, err := wgtun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("create TUN interface %s: %w", name, err)
	}
	if err := configure(name, v4, v6); err != nil {
		dev.Close()
		return nil, fmt.Errorf("configure interface %s: %w", name, err)
	}
	e, err := New(Config{Device: dev, Host: d.Host, Addr4: v4, Addr6: v6, MTU: mtu,
		Logger: d.Logger, Members: d.Members, Policy: d.Policy})
	if err != nil {
		dev.Close()
		return nil, err
	}
	d.Logger.Info("overlay interface up", "name", name, "ipv4", v4, "ipv6", v6, "mtu", mtu)
	return &Interface{Engine: e, Mode: ModeKernel, Name: name,
		closers: []io.Closer{linkRemover(name), e}}, nil
}

// removeStale deletes a TUN interface called name. Any other kind of
// interface with that name is an error: it is not ours.
func removeStale(name string, d Deps) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("look up interface %s: %w", name, err)
	}
	if l.Type() != "tuntap" {
		return fmt.Errorf("interface %s exists and is a %s, not a TUN interface: choose another --tun-name", name, l.Type())
	}
	d.Logger.Info("removing a TUN interface left behind", "name", name)
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("remove stale interface %s: %w", name, err)
	}
	return nil
}

// configure gives interface name its addresses (host routes, without
// IPv6 duplicate address detection: the overlay's addresses are unique by
// construction, and DAD would hold the address back for a second), sets it
// up, and routes both overlay prefixes to it.
func configure(name string, v4, v6 netip.Addr) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up: %w", err)
	}
	for _, a := range []netip.Addr{v4, v6} {
		bits := a.BitLen()
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, bits)}}
		if a.Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(l, addr); err != nil {
			return fmt.Errorf("add address %s: %w", a, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	for _, p := range []netip.Prefix{Prefix4, Prefix6} {
		bits := p.Addr().BitLen()
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Scope: netlink.SCOPE_LINK,
			Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("route %s: %w", p, err)
		}
	}
	return nil
}

// linkRemover deletes the interface on Close, should closing the device
// not have removed it (a persistent TUN).
type linkRemover string

func (n linkRemover) Close() error {
	l, err := netlink.LinkByName(string(n))
	if err != nil {
		return nil // gone with the device: the usual case
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("remove interface %s: %w", string(n), err)
	}
	return nil
}
