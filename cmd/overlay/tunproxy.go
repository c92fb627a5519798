package main

import (
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/overlay-net/overlay/node/tun"
)

// defaultSOCKS is where --tun userspace serves SOCKS5 unless told: loopback
// only, since the proxy has no authentication, on SOCKS's usual port.
const defaultSOCKS = "127.0.0.1:1080"

// tunProxyFlags are the userspace mode's proxy flags (node/tun/proxy).
type tunProxyFlags struct{ socks, http, accept string }

func (p *tunProxyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.socks, "socks5", defaultSOCKS, "with --tun userspace: serve a SOCKS5 proxy into the overlay at this address (CONNECT, no authentication, names under .overlay resolved by the node: curl --socks5-hostname); off for none; ignored in other modes")
	fs.StringVar(&p.accept, "tun-accept", "", "with --tun userspace: comma-separated TCP ports members may connect to on this node's overlay addresses, each carried to the same port on 127.0.0.1 (then ::1), as a service listening on the overlay address would be reached in kernel mode; none by default; ignored in other modes")
	fs.StringVar(&p.http, "http-proxy", "", "with --tun userspace: serve an HTTP proxy into the overlay at this address (CONNECT, and plain http:// URLs), e.g. 127.0.0.1:8080; none by default; ignored in other modes")
}

// apply puts the proxy addresses into o when it asks for the userspace mode.
func (p *tunProxyFlags) apply(o *tun.Options) error {
	if o == nil || o.Mode != tun.ModeUserspace {
		return nil
	}
	for _, a := range []struct {
		flag, v string
		dst     *string
	}{{"socks5", p.socks, &o.SOCKS}, {"http-proxy", p.http, &o.HTTP}} {
		if a.v == "" || a.v == "off" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return fmt.Errorf("--%s %q: want HOST:PORT: %w", a.flag, a.v, err)
		}
		*a.dst = a.v
	}
	for _, f := range strings.Split(p.accept, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		port, err := strconv.ParseUint(f, 10, 16)
		if err != nil || port == 0 {
			return fmt.Errorf("--tun-accept %q: want TCP ports 1 to 65535, comma-separated", p.accept)
		}
		o.Accept = append(o.Accept, uint16(port))
	}
	return nil
}
