package wstransport_test

import (
	"crypto/tls"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/security/insecure"
	ttransport "github.com/libp2p/go-libp2p/p2p/transport/testsuite"

	"github.com/overlay-net/overlay/internal/wstransport"
	"github.com/overlay-net/overlay/internal/wstransport/tlstest"
)

// suiteTransport is a transport with an upgrader as go-libp2p's own
// transport tests build it: insecure security (the suite tests the
// transport, not the handshake) and yamux.
func suiteTransport(t *testing.T, opts ...wstransport.Option) (peer.ID, *wstransport.Transport) {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	sec := []sec.SecureTransport{insecure.NewWithIdentity(insecure.ID, id, priv)}
	up, err := upgrader.New(sec, []upgrader.StreamMuxer{{ID: yamux.ID, Muxer: yamux.DefaultTransport}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := wstransport.New(up, &network.NullResourceManager{}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return id, tr
}

// go-libp2p's transport test suite, run as upstream runs it on its own
// WebSocket transport (p2p/transport/websocket: TestWebsocketTransport).
func TestTransportSuite(t *testing.T) {
	t.Run("/ws", func(t *testing.T) {
		a, ta := suiteTransport(t)
		b, tb := suiteTransport(t)
		ttransport.SubtestTransport(t, ta, tb, "/ip4/127.0.0.1/tcp/0/ws", a)
		ttransport.SubtestTransport(t, tb, ta, "/ip4/127.0.0.1/tcp/0/ws", b)
	})
	t.Run("/tls/ws", func(t *testing.T) {
		// As upstream: one side listens with TLS, the other without.
		ca := tlstest.NewCA(t, t.TempDir())
		cfg := wstransport.Config{TLS: ca.ServerConfig(t), TLSClient: &tls.Config{RootCAs: ca.Pool()}}
		a, ta := suiteTransport(t, wstransport.WithConfig(cfg))
		b, tb := suiteTransport(t, wstransport.WithConfig(cfg))
		ttransport.SubtestTransport(t, ta, tb, "/ip4/127.0.0.1/tcp/0/tls/ws", a)
		ttransport.SubtestTransport(t, tb, ta, "/ip4/127.0.0.1/tcp/0/ws", b)
	})
	t.Run("/ws/small-buffers-no-pool", func(t *testing.T) {
		cfg := wstransport.Config{ReadBuffer: 256, AcceptReadBuffer: 128, WriteBuffer: 256, NoWritePool: true}
		a, ta := suiteTransport(t, wstransport.WithConfig(cfg))
		_, tb := suiteTransport(t, wstransport.WithConfig(cfg))
		ttransport.SubtestTransport(t, ta, tb, "/ip4/127.0.0.1/tcp/0/ws", a)
	})
}
