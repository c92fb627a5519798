package node_test

import (
	"context"
	"crypto/tls"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/overlay-net/overlay/internal/wstransport"
	"github.com/overlay-net/overlay/internal/wstransport/tlstest"
	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/book"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
)

// wssRelay starts a relay listening on /tls/ws only, serving the
// certificate in certFile and keyFile (checked for renewal every 20 ms),
// and returns it with its full /tls/ws address.
func wssRelay(t testing.TB, certFile, keyFile string) (*node.Node, ma.Multiaddr) {
	t.Helper()
	r := nt.Relay(t, nt.WithListen("/ip4/127.0.0.1/tcp/0/tls/ws"), func(c *node.Config) {
		c.WebSocket.CertFile, c.WebSocket.KeyFile = certFile, keyFile
		c.WebSocket.CertCheckInterval = 20 * time.Millisecond
	})
	for _, a := range r.FullAddrs() {
		if wstransport.IsSecure(a) {
			return r, a
		}
	}
	t.Fatalf("relay has no /tls/ws address among %v", r.FullAddrs())
	return nil, nil
}

func withCA(file string) nt.Option {
	return func(c *node.Config) { c.WebSocket.CAFile = file }
}

// A relay listens on /tls/ws with a certificate from files; private nodes
// given the CA file reserve on it, and one reaches the other through the
// circuit.
func TestWSSRelayReservedWithCAFile(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir)
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, cf, kf)
	r, addr := wssRelay(t, cf, kf)
	if !strings.Contains(addr.String(), "/ip4/127.0.0.1/tcp/") {
		t.Fatalf("relay address %s", addr)
	}
	a := nt.Peer(t, []ma.Multiaddr{addr}, withCA(ca.File))
	b := nt.Peer(t, []ma.Multiaddr{addr}, withCA(ca.File))
	nt.Eventually(t, 20*time.Second, "both peers reserved on the /tls/ws relay", func() bool {
		return nt.Reserved(a, 1) && nt.Reserved(b, 1)
	})
	for _, c := range r.Host().Network().ConnsToPeer(a.ID()) {
		if !wstransport.IsSecure(c.RemoteMultiaddr()) {
			t.Errorf("relay's connection from a comes from %s, want /tls/ws", c.RemoteMultiaddr())
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.Ping(ctx, a.ID().String(), 2, 10*time.Millisecond); err != nil {
		t.Fatalf("ping a through the /tls/ws relay's circuit: %v", err)
	}
	p, ok := b.Book().Get(a.ID())
	if !ok || p.State != book.StateMember || p.Path != book.PathRelayed {
		t.Fatalf("b books a as %+v, want a member on a relayed path", p)
	}
}

// servedSerial makes a TLS handshake with the relay's /tls/ws port,
// trusting ca, and returns the serial of the certificate it served.
func servedSerial(t *testing.T, ca *tlstest.CA, addr ma.Multiaddr) *big.Int {
	t.Helper()
	tcp, _ := ma.SplitFirst(addr) // /ip4/127.0.0.1
	port, err := addr.ValueForProtocol(ma.P_TCP)
	if err != nil {
		t.Fatal(err)
	}
	ip, err := manet.ToIP(tcp.Multiaddr())
	if err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort(ip.String(), port), &tls.Config{RootCAs: ca.Pool()})
	if err != nil {
		t.Fatalf("tls handshake with the relay: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// A renewed certificate, the files replaced on disk, is served to new
// handshakes without a restart, and peers reserve with it.
func TestWSSRelayCertificateRenewal(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir)
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := ca.Issue(t, cf, kf)
	_, addr := wssRelay(t, cf, kf)
	a := nt.Peer(t, []ma.Multiaddr{addr}, withCA(ca.File))
	nt.Eventually(t, 20*time.Second, "a reserved", func() bool { return nt.Reserved(a, 1) })
	if got := servedSerial(t, ca, addr); got.Cmp(first) != 0 {
		t.Fatalf("relay served serial %s, want %s", got, first)
	}

	second := ca.Issue(t, cf, kf)
	nt.Eventually(t, 10*time.Second, "the renewed certificate served", func() bool {
		return servedSerial(t, ca, addr).Cmp(second) == 0
	})
	b := nt.Peer(t, []ma.Multiaddr{addr}, withCA(ca.File))
	nt.Eventually(t, 20*time.Second, "b reserved after the renewal", func() bool { return nt.Reserved(b, 1) })
	if !nt.Reserved(a, 1) {
		t.Error("a lost its reservation over the renewal")
	}
}

// A node that does not trust the relay's CA (system roots only) fails
// its dial with a certificate error.
func TestWSSDialWithoutCAFails(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir)
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, cf, kf)
	r, addr := wssRelay(t, cf, kf)
	p := nt.Peer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ai, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Host().Connect(ctx, *ai)
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("dial of %s without its CA: %v, want a certificate error", r.ID(), err)
	}
}

// A /tls/ws (or /wss) listen address without a certificate and key fails
// at start, naming the flags; so does a key without a certificate.
func TestWSSListenNeedsCertificate(t *testing.T) {
	for _, listen := range []string{"/ip4/127.0.0.1/tcp/0/tls/ws", "/ip4/127.0.0.1/tcp/0/wss"} {
		cfg := node.DefaultConfig(protocol.RolePublic)
		cfg.Key, cfg.Listen = nt.Key(t), []ma.Multiaddr{ma.StringCast(listen)}
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "--tls-cert") || !strings.Contains(err.Error(), listen) {
			t.Errorf("listen on %s without a certificate: %v, want an error naming the address and --tls-cert", listen, err)
		}
		if _, err := node.New(cfg); err == nil {
			t.Errorf("node.New listened on %s without a certificate", listen)
		}
	}
	cfg := node.DefaultConfig(protocol.RolePublic)
	cfg.Key, cfg.WebSocket.KeyFile = nt.Key(t), "key.pem"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Errorf("a key without a certificate: %v", err)
	}
}

// BenchmarkPerfRelayedTLS measures bulk throughput through a relay whose
// hops are plain WebSocket or WebSocket over TLS (one more TLS layer on
// each hop, under libp2p's own).
func BenchmarkPerfRelayedTLS(b *testing.B) {
	for _, hop := range []string{"ws", "tls-ws"} {
		b.Run(hop, func(b *testing.B) {
			var addr ma.Multiaddr
			var opts []nt.Option
			if hop == "ws" {
				addr = nt.WSAddr(b, nt.Relay(b, nt.WithListen("/ip4/127.0.0.1/tcp/0/ws")))
			} else {
				dir := b.TempDir()
				ca := tlstest.NewCA(b, dir)
				cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
				ca.Issue(b, cf, kf)
				_, addr = wssRelay(b, cf, kf)
				opts = append(opts, withCA(ca.File))
			}
			from := nt.Peer(b, []ma.Multiaddr{addr}, opts...)
			to := nt.Peer(b, []ma.Multiaddr{addr}, opts...)
			nt.Eventually(b, 20*time.Second, "both reserved", func() bool { return nt.Reserved(from, 1) && nt.Reserved(to, 1) })
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := from.Connect(ctx, to.ID().String()); err != nil {
				b.Fatal(err)
			}
			const size = 32 << 20
			b.SetBytes(size)
			b.ResetTimer()
			for range b.N {
				if _, err := protocol.RunPerf(context.Background(), from.Host(), to.ID(), 0, size); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
