package protocol_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/protocol"
)

// testCert signs a certificate for a new peer ID with a new CA.
func testCert(tb testing.TB, notBefore, notAfter time.Time) (*cert.Certificate, ed25519.PublicKey) {
	tb.Helper()
	pub, priv, err := cert.NewCA()
	if err != nil {
		tb.Fatal(err)
	}
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := cert.NewSerial()
	if err != nil {
		tb.Fatal(err)
	}
	c := &cert.Certificate{Serial: s, Peer: id, Name: "laptop", Groups: []string{"ops"}, NotBefore: notBefore, NotAfter: notAfter}
	if _, err := c.Sign(priv); err != nil {
		tb.Fatal(err)
	}
	return c, pub
}

func TestHelloCarriesCertificate(t *testing.T) {
	now := time.Now()
	c, ca := testCert(t, now.Add(-time.Hour), now.Add(time.Hour))
	h := hello("net", protocol.Version, protocol.RolePrivate)
	h.Cert = c.Marshal()
	b, err := protocol.EncodeHello(h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := protocol.DecodeHello(b)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := got.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	if err := gc.Verify(ca, c.Peer, now); err != nil {
		t.Fatalf("certificate after a round trip: %v", err)
	}
	if none, err := hello("net", protocol.Version, protocol.RolePrivate).Certificate(); none != nil || err != nil {
		t.Fatalf("hello without a certificate: %v, %v", none, err)
	}
	h.Cert = make([]byte, protocol.MaxCertSize+1)
	if _, err := protocol.EncodeHello(h); err != nil {
		t.Fatal(err) // the encoder leaves the cap to the reader
	}
	b, _ = protocol.EncodeHello(h)
	if _, err := protocol.DecodeHello(b); !errors.Is(err, protocol.ErrMalformed) {
		t.Fatalf("oversized certificate: %v", err)
	}
}

func TestCheckCertMode(t *testing.T) {
	v2 := hello("net", 2, protocol.RolePrivate)
	err := protocol.CheckCertMode(true, "abcd", v2)
	var r *protocol.Refusal
	if !errors.As(err, &r) || r.Code != protocol.CodeCertRequired || !errors.Is(err, protocol.ErrCertRequired) {
		t.Fatalf("no certificate in certificate mode: %v", err)
	}
	// A version 2 node shows the reason as text: it must say it all.
	for _, w := range []string{"certificate required", "certificate mode", "version 2", "upgrade"} {
		if !strings.Contains(r.Reason, w) {
			t.Errorf("reason %q lacks %q", r.Reason, w)
		}
	}
	withCert := hello("net", protocol.Version, protocol.RolePrivate)
	withCert.Cert = []byte{1}
	err = protocol.CheckCertMode(false, "", withCert)
	if !errors.As(err, &r) || r.Code != protocol.CodeCertUnused || !errors.Is(err, protocol.ErrCertUnused) {
		t.Fatalf("certificate outside certificate mode: %v", err)
	}
	if err := protocol.CheckCertMode(true, "abcd", withCert); err != nil {
		t.Fatal(err)
	}
	if err := protocol.CheckCertMode(false, "", v2); err != nil {
		t.Fatal(err)
	}
}

// TestCertRefusalBothSides: every certificate refusal travels in frame 0x04
// with its code, matches its sentinel on both sides, and is worded for each.
func TestCertRefusalBothSides(t *testing.T) {
	self := hello("net", protocol.Version, protocol.RolePrivate)
	cases := []struct {
		err       error
		code      protocol.RejectCode
		refuser   string // in the refuser's reason
		refused   string // in the refused side's wording
		sentinels error
	}{
		{cert.ErrExpired, protocol.CodeCertExpired, "certificate expired", "certificate expired", cert.ErrExpired},
		{cert.ErrNotYetValid, protocol.CodeCertNotYetValid, "not yet valid", "not valid yet", cert.ErrNotYetValid},
		{cert.ErrRevoked, protocol.CodeCertRevoked, "revoked", "revokes this node's certificate", cert.ErrRevoked},
		{cert.ErrUnknownCA, protocol.CodeCertUnknownCA, "unknown CA", "trusts another CA", cert.ErrUnknownCA},
		{cert.ErrBadSignature, protocol.CodeCertBadSignature, "bad CA signature", "not signed by its CA", cert.ErrBadSignature},
		{cert.ErrPeerMismatch, protocol.CodeCertPeerMismatch, "peer ID mismatch", "another peer ID", cert.ErrPeerMismatch},
		{cert.ErrMalformed, protocol.CodeCertMalformed, "malformed", "could not read this node's certificate", cert.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(string(c.code), func(t *testing.T) {
			r := protocol.CertRefusal(c.err)
			if r.Code != c.code || !errors.Is(r, c.sentinels) || !strings.Contains(r.Error(), c.refuser) {
				t.Fatalf("refuser's refusal %+v", r)
			}
			b, err := protocol.EncodeRefusal(r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := protocol.DecodeRefusal(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Code != c.code || !errors.Is(got, c.sentinels) {
				t.Fatalf("decoded %+v", got)
			}
			if e := got.Explain("the peer", self); !strings.Contains(e, c.refused) || !strings.Contains(e, "the peer") {
				t.Fatalf("refused side reads %q, want %q", e, c.refused)
			}
		})
	}
}

func FuzzHelloCertificate(f *testing.F) {
	now := time.Now()
	c, _ := testCert(f, now.Add(-time.Hour), now.Add(time.Hour))
	h := hello("n", protocol.Version, protocol.RolePublic)
	h.Cert = c.Marshal()
	valid, err := protocol.EncodeHello(h)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	raw := c.Marshal()
	for _, cut := range []int{0, 2, 8, len(raw) - 1} {
		h.Cert = raw[:cut]
		b, _ := protocol.EncodeHello(h)
		f.Add(b)
	}
	f.Add([]byte(`{"network":"n","version":3,"role":"public","cert":"b3YBAQAAAAJ7fQ=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := protocol.DecodeHello(b)
		if err != nil {
			return
		}
		c, err := h.Certificate()
		switch {
		case err != nil:
			if !errors.Is(err, cert.ErrMalformed) {
				t.Fatalf("Certificate error %v does not wrap cert.ErrMalformed", err)
			}
			if r := protocol.CertRefusal(err); r.Code != protocol.CodeCertMalformed {
				t.Fatalf("refusal of a malformed certificate has code %q", r.Code)
			}
		case c == nil:
			if len(h.Cert) != 0 {
				t.Fatal("no certificate and no error from a hello that carries bytes")
			}
		default:
			if len(h.Cert) > protocol.MaxCertSize {
				t.Fatalf("parsed a certificate of %d bytes", len(h.Cert))
			}
			if err := cert.ValidName(c.Name); err != nil {
				t.Fatalf("parsed certificate with name %q: %v", c.Name, err)
			}
		}
	})
}
