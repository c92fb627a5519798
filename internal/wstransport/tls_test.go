package wstransport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/upgrader"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/internal/wstransport/tlstest"
)

// tlsListen listens on /tls/ws with a certificate from files the CA
// signed, checked for renewal every 10 ms.
func tlsListen(t *testing.T, ca *tlstest.CA, certFile, keyFile string) (*Transport, *wsListener) {
	t.Helper()
	tr := rawTransport(t, Config{CertFile: certFile, KeyFile: keyFile, CertCheckInterval: 10 * time.Millisecond, CAFile: ca.File})
	l, err := tr.listen(ma.StringCast("/ip4/127.0.0.1/tcp/0/wss"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return tr, l
}

// servedSerial makes a TLS handshake with l as a client trusting ca and
// returns the serial of the certificate l served.
func servedSerial(t *testing.T, ca *tlstest.CA, l *wsListener) *big.Int {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", l.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatalf("tls handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// A /wss listen address is announced as /tls/ws; a dial trusting the CA
// file carries a byte stream both ways with the right addresses.
func TestTLSListenDialAccept(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir)
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, cf, kf)
	tr, l := tlsListen(t, ca, cf, kf)
	if got := l.Multiaddr().String(); !strings.HasSuffix(got, "/tls/ws") {
		t.Fatalf("listener address %s, want /tls/ws", got)
	}
	dc, ac := dialAccept(t, tr, l)
	for _, a := range []ma.Multiaddr{dc.LocalMultiaddr(), dc.RemoteMultiaddr(), ac.LocalMultiaddr(), ac.RemoteMultiaddr()} {
		if !IsSecure(a) {
			t.Errorf("address %s of a TLS connection is not /tls/ws", a)
		}
	}
	go dc.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := ac.Read(buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

// Files replaced on disk reach new handshakes without a restart; a
// half-written or broken pair leaves the loaded one in service.
func TestTLSCertificateRenewal(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir)
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := ca.Issue(t, cf, kf)
	tr, l := tlsListen(t, ca, cf, kf)
	if got := servedSerial(t, ca, l); got.Cmp(first) != 0 {
		t.Fatalf("served serial %s, want %s", got, first)
	}
	second := ca.Issue(t, cf, kf)
	waitFor(t, "the renewed certificate", func() bool { return servedSerial(t, ca, l).Cmp(second) == 0 })

	if err := os.WriteFile(cf, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failed reload", func() bool {
		servedSerial(t, ca, l) // a handshake is what checks the files
		tr.certs.mu.Lock()
		defer tr.certs.mu.Unlock()
		return tr.certs.failed[0] != nil
	})
	if got := servedSerial(t, ca, l); got.Cmp(second) != 0 {
		t.Fatalf("after a broken renewal served serial %s, want the loaded %s", got, second)
	}
	third := ca.Issue(t, cf, kf)
	waitFor(t, "the next renewal", func() bool { return servedSerial(t, ca, l).Cmp(third) == 0 })
}

// A dial that does not trust the listener's CA fails on the certificate;
// a listener with no certificate for /tls/ws does not start; a key
// without a certificate is refused at New.
func TestTLSErrors(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir)
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, cf, kf)
	_, l := tlsListen(t, ca, cf, kf)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := rawTransport(t, Config{}).dial(ctx, l.Multiaddr())
	var unknown x509.UnknownAuthorityError
	if err == nil || !errors.As(err, &unknown) {
		t.Fatalf("dial without the CA: %v, want x509: certificate signed by unknown authority", err)
	}

	if _, err := rawTransport(t, Config{}).listen(ma.StringCast("/ip4/127.0.0.1/tcp/0/tls/ws")); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Fatalf("listen on /tls/ws without a certificate: %v", err)
	}
	up, err := upgrader.New(nil, nil, nil, &network.NullResourceManager{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(up, nil, WithConfig(Config{KeyFile: kf})); err == nil {
		t.Fatal("New took a key without a certificate")
	}
	if _, err := New(up, nil, WithConfig(Config{CertFile: cf, KeyFile: filepath.Join(dir, "missing.pem")})); err == nil ||
		!strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("New with a missing key file: %v, want an error naming it", err)
	}
	if _, err := New(up, nil, WithConfig(Config{CAFile: kf})); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("New with a key as CA file: %v", err)
	}
}

// The TLS handshake runs under the upgrade's deadline: a client that
// opens the TCP connection and stalls, before or during the handshake,
// is closed after HandshakeTimeout, not held.
func TestTLSHandshakeTimeout(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir)
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, cf, kf)
	tr := rawTransport(t, Config{CertFile: cf, KeyFile: kf, HandshakeTimeout: 200 * time.Millisecond})
	l, err := tr.listen(ma.StringCast("/ip4/127.0.0.1/tcp/0/tls/ws"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for _, opening := range [][]byte{nil, {0x16, 0x03, 0x01, 0x02, 0x00}} { // silence; a ClientHello's first bytes
		c, err := net.Dial("tcp", tcpAddr(l))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(opening); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a pending upgrade", func() bool { return l.Pending() == 1 })
		start := time.Now()
		if !closedWithin(c, 5*time.Second) {
			t.Fatalf("stalled TLS client (sent %x) still open after 5 s", opening)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("closed after %v, want about 200 ms", d)
		}
		waitFor(t, "no pending upgrade", func() bool { return l.Pending() == 0 })
	}
}
