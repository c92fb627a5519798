package tun_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	xproxy "golang.org/x/net/proxy"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/certs"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// certified returns the options of a certificate-mode node called name,
// its certificate signed by the CA priv.
func certified(t *testing.T, pub []byte, priv []byte, name string) []nt.Option {
	t.Helper()
	k := nt.Key(t)
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cert.NewSerial()
	if err != nil {
		t.Fatal(err)
	}
	c := &cert.Certificate{Serial: s, Peer: id, Name: name,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	if _, err := c.Sign(priv); err != nil {
		t.Fatal(err)
	}
	b, err := cert.EncodePEM(c.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "node.cert")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return []nt.Option{nt.WithKey(k), func(c *node.Config) {
		c.Certs = certs.Config{CA: pub, CertFile: file}
	}}
}

// TestUserspaceNamesFromCertificates: in certificate mode a member is
// reached through the SOCKS5 proxy by its certificate's name, any case.
func TestUserspaceNamesFromCertificates(t *testing.T) {
	pub, priv, err := cert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	r := nt.Relay(t, certified(t, pub, priv, "relay")...)
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	alice := nt.Peer(t, relays, append(certified(t, pub, priv, "alice"), withUserspace())...)
	bob := nt.Peer(t, relays, append(certified(t, pub, priv, "bob"), withUserspace())...)
	nt.Eventually(t, 30*time.Second, "both members reserved", func() bool {
		return nt.Reserved(alice, 1) && nt.Reserved(bob, 1)
	})
	if _, err := bob.Connect(nt.Context(t, 60*time.Second), alice.ID().String()); err != nil {
		t.Fatalf("connect bob->alice: %v", err)
	}
	nt.Eventually(t, 30*time.Second, "bob's interface knows alice by name", func() bool {
		_, _, ok := bob.TUN().Lookup("alice")
		return ok
	})

	stack, _, _ := alice.TUN().Userspace()
	a4, _ := alice.TUN().Addrs()
	l, err := stack.Net().ListenTCPAddrPort(netip.AddrPortFrom(a4, 80))
	if err != nil {
		t.Fatal(err)
	}
	web := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "alice here")
	}), ReadHeaderTimeout: 10 * time.Second}
	go web.Serve(l)
	t.Cleanup(func() { web.Close() })

	_, socks, _ := bob.TUN().Userspace()
	d, err := xproxy.SOCKS5("tcp", socks.String(), nil, &net.Dialer{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: d.(xproxy.ContextDialer).DialContext, DisableKeepAlives: true,
	}}
	for _, u := range []string{"http://alice.overlay/", "http://Alice.Overlay/"} {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "alice here" {
			t.Errorf("GET %s: %q", u, body)
		}
	}
}
