package wstransport_test

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/p2p/transport/websocket"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/internal/wstransport"
	"github.com/overlay-net/overlay/internal/wstransport/tlstest"
)

func TestCanDial(t *testing.T) {
	tr, err := wstransport.New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"/ip4/1.2.3.4/tcp/80/ws":                        true,
		"/ip6/::1/tcp/80/ws":                            true,
		"/dns4/relay.example/tcp/443/wss":               true,
		"/dns/relay.example/tcp/443/tls/ws":             true,
		"/ip4/1.2.3.4/tcp/443/tls/sni/relay.example/ws": true,
		"/ip4/1.2.3.4/tcp/80":                           false,
		"/ip4/1.2.3.4/udp/80/quic-v1":                   false,
		"/ip4/1.2.3.4/tcp/80/ws/p2p-circuit":            false,
		"/ip4/1.2.3.4/tcp/80/tls/ws/ws":                 false,
	} {
		if got := tr.CanDial(ma.StringCast(addr)); got != want {
			t.Errorf("CanDial(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestResolveKeepsServerName(t *testing.T) {
	tr, err := wstransport.New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"/dns4/relay.example/tcp/443/wss":               "/dns4/relay.example/tcp/443/tls/sni/relay.example/ws",
		"/dns/relay.example/tcp/443/tls/ws":             "/dns/relay.example/tcp/443/tls/sni/relay.example/ws",
		"/ip4/1.2.3.4/tcp/443/tls/sni/other.example/ws": "/ip4/1.2.3.4/tcp/443/tls/sni/other.example/ws",
		"/dns4/relay.example/tcp/80/ws":                 "/dns4/relay.example/tcp/80/ws",
	} {
		got, err := tr.Resolve(context.Background(), ma.StringCast(in))
		if err != nil || len(got) != 1 || got[0].String() != want {
			t.Errorf("Resolve(%s) = %v, %v; want %s", in, got, err, want)
		}
	}
}

// Ours dials a stock node that listens on /tls/ws, verifying its certificate.
func TestDialStockSecureWebSocket(t *testing.T) {
	ca := tlstest.NewCA(t, t.TempDir())
	pool := ca.Pool()
	h, err := libp2p.New(
		libp2p.Transport(websocket.New, websocket.WithTLSConfig(ca.ServerConfig(t))),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0/tls/ws"),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	serveEcho(h)
	push(t, ourHost(t, wstransport.WithConfig(wstransport.Config{TLSClient: &tls.Config{RootCAs: pool}})), h, 1<<20)
}

// A stock node dials ours listening on /tls/ws with a certificate from
// files, verifying it against the CA.
func TestStockDialsOurSecureWebSocket(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir)
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, cf, kf)
	h, err := libp2p.New(
		libp2p.Transport(wstransport.New, wstransport.WithConfig(wstransport.Config{CertFile: cf, KeyFile: kf})),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0/wss"),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	serveEcho(h)
	stock, err := libp2p.New(
		libp2p.Transport(websocket.New, websocket.WithTLSClientConfig(&tls.Config{RootCAs: ca.Pool()})),
		libp2p.NoListenAddrs,
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stock.Close() })
	push(t, stock, h, 1<<20)
}
