package wstransport

import (
	"errors"
	"fmt"
	"net"

	ma "github.com/multiformats/go-multiaddr"
)

var errNotWebSocket = errors.New("not a /tcp/N/ws, /wss or /tls/ws address")

// dialAddr is a WebSocket multiaddr taken apart for a dial.
type dialAddr struct {
	host, port string
	hostPort   string // host:port, IPv6 bracketed
	secure     bool   // /wss or /tls/ws
	sni        string // /tls/sni/NAME/ws
	serverName string // the TLS name to verify: sni, else a DNS host
}

// parseAddr accepts exactly IP-or-DNS, tcp, then ws | wss | tls[/sni/X]/ws.
func parseAddr(a ma.Multiaddr) (dialAddr, error) {
	var d dialAddr
	if len(a) < 3 {
		return d, errNotWebSocket
	}
	first, tcp := a[0], a[1]
	isDNS := false
	switch first.Protocol().Code {
	case ma.P_IP4, ma.P_IP6:
	case ma.P_DNS, ma.P_DNS4, ma.P_DNS6:
		isDNS = true
	default:
		return d, errNotWebSocket
	}
	if tcp.Protocol().Code != ma.P_TCP {
		return d, errNotWebSocket
	}
	d.host, d.port = first.Value(), tcp.Value()
	d.hostPort = net.JoinHostPort(d.host, d.port)
	rest := a[2:]
	switch {
	case len(rest) == 1 && rest[0].Protocol().Code == ma.P_WS:
	case len(rest) == 1 && rest[0].Protocol().Code == ma.P_WSS:
		d.secure = true
	case len(rest) == 2 && rest[0].Protocol().Code == ma.P_TLS && rest[1].Protocol().Code == ma.P_WS:
		d.secure = true
	case len(rest) == 3 && rest[0].Protocol().Code == ma.P_TLS && rest[1].Protocol().Code == ma.P_SNI &&
		rest[2].Protocol().Code == ma.P_WS:
		d.secure, d.sni = true, rest[1].Value()
	default:
		return d, errNotWebSocket
	}
	switch {
	case d.sni != "":
		d.serverName = d.sni
	case isDNS:
		d.serverName = d.host
	}
	return d, nil
}

// listenAddr returns the TCP part of a /ip4|ip6/tcp/N/ws address, and
// whether it is one with TLS (/tcp/N/wss or /tcp/N/tls/ws).
func listenAddr(a ma.Multiaddr) (tcp ma.Multiaddr, secure bool, err error) {
	errWant := fmt.Errorf("want /ip4|ip6/tcp/N/ws, /tls/ws or /wss: %w", errNotWebSocket)
	if len(a) < 3 || a[1].Protocol().Code != ma.P_TCP {
		return nil, false, errWant
	}
	if c := a[0].Protocol().Code; c != ma.P_IP4 && c != ma.P_IP6 {
		return nil, false, errWant
	}
	switch rest := a[2:]; {
	case len(rest) == 1 && rest[0].Protocol().Code == ma.P_WS:
	case len(rest) == 1 && rest[0].Protocol().Code == ma.P_WSS:
		secure = true
	case len(rest) == 2 && rest[0].Protocol().Code == ma.P_TLS && rest[1].Protocol().Code == ma.P_WS:
		secure = true
	default:
		return nil, false, errWant
	}
	return a[:2], secure, nil
}

// IsSecure reports whether a is a WebSocket address with TLS: /wss,
// /tls/ws or /tls/sni/NAME/ws.
func IsSecure(a ma.Multiaddr) bool {
	var ws, tls bool
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_WSS:
			return true
		case ma.P_WS:
			ws = true
		case ma.P_TLS:
			tls = true
		}
	}
	return ws && tls
}

func wsSuffix(secure bool) ma.Multiaddr {
	if secure {
		return ma.StringCast("/tls/ws")
	}
	return ma.StringCast("/ws")
}
