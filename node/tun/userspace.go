package tun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	wgtun "golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// Userspace is the overlay network inside the process, for hosts where the
// node may not create an interface (no root, no NET_ADMIN): wireguard-go's
// netstack, a gVisor TCP/IP stack holding the node's overlay addresses. Its
// Device carries the stack's packets to and from the engine as a kernel
// TUN would; its Net dials and listens inside the stack, which is how the
// SOCKS5 and HTTP proxies and the DNS server reach the overlay.
type Userspace struct {
	dev   wgtun.Device
	net   *netstack.Net
	addrs []netip.Addr
}

// NewUserspace starts a stack with addrs (the node's IPv4 and IPv6
// overlay addresses; invalid ones are skipped) and mtu, and checks that it
// carries a TCP connection between its own addresses.
func NewUserspace(addrs []netip.Addr, mtu int) (*Userspace, error) {
	var valid []netip.Addr
	for _, a := range addrs {
		if a.IsValid() {
			valid = append(valid, a)
		}
	}
	if len(valid) == 0 {
		return nil, errors.New("userspace tun: no address")
	}
	// No DNS servers: the stack's own resolver stays unused, since names
	// are resolved by the caller (the proxies ask the engine).
	dev, tnet, err := netstack.CreateNetTUN(valid, nil, mtu)
	if err != nil {
		return nil, fmt.Errorf("userspace tun: create netstack: %w", err)
	}
	u := &Userspace{dev: dev, net: tnet, addrs: valid}
	if err := u.selfCheck(); err != nil {
		dev.Close()
		return nil, fmt.Errorf("userspace tun: self-check: %w", err)
	}
	return u, nil
}

// selfCheck connects the stack to itself over TCP on its first address:
// what the proxies rely on (listen, dial, half-close) holds in this
// version of netstack.
func (u *Userspace) selfCheck() error {
	l, err := u.net.ListenTCPAddrPort(netip.AddrPortFrom(u.addrs[0], 0))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.Copy(c, c) // echo until the dialer half-closes
		errc <- err
	}()
	c, err := u.DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return fmt.Errorf("netstack conn %T has no CloseWrite", c)
	}
	if _, err := c.Write([]byte("overlay")); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := cw.CloseWrite(); err != nil {
		return fmt.Errorf("close write: %w", err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "overlay" {
		return fmt.Errorf("echo: got %q, %v", got, err)
	}
	return <-errc
}

// Device is the stack's side of the packet path, for the engine.
func (u *Userspace) Device() wgtun.Device { return u.dev }

// Net dials and listens inside the stack.
func (u *Userspace) Net() *netstack.Net { return u.net }

// Addrs returns the stack's addresses.
func (u *Userspace) Addrs() []netip.Addr { return u.addrs }

// DialContext dials address (an IP literal and port) inside the stack.
func (u *Userspace) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return u.net.DialContext(ctx, network, address)
}

// Close stops the stack and closes its device. Whoever else holds the
// device (the engine) then reads an error and stops.
func (u *Userspace) Close() error { return u.dev.Close() }
