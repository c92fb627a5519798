package cert_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
)

func newCA(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := cert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func newPeer(t testing.TB) peer.ID {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// t0 is the time the test certificates are issued at.
var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// issue signs a certificate for id valid from t0 for 30 days.
func issue(t testing.TB, ca ed25519.PrivateKey, id peer.ID, name string, groups ...string) (*cert.Certificate, []byte) {
	t.Helper()
	s, err := cert.NewSerial()
	if err != nil {
		t.Fatal(err)
	}
	c := &cert.Certificate{Serial: s, Peer: id, Name: name, Groups: groups,
		NotBefore: t0, NotAfter: t0.Add(30 * 24 * time.Hour)}
	b, err := c.Sign(ca)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return c, b
}

func TestCertificateRoundTrip(t *testing.T) {
	pub, priv := newCA(t)
	id := newPeer(t)
	s, _ := cert.NewSerial()
	c := &cert.Certificate{Serial: s, Peer: id, Name: "laptop-1", Groups: []string{"ops", "dev", "ops"},
		NotBefore: t0.Add(500 * time.Millisecond), NotAfter: t0.Add(time.Hour),
		IPv4: netip.MustParseAddr("100.64.0.7"), IPv6: netip.MustParseAddr("fd00:6f76::7")}
	b, err := c.Sign(priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cert.ParseCertificate(b)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if got.Serial != s || got.Peer != id || got.Name != "laptop-1" ||
		len(got.Groups) != 2 || got.Groups[0] != "dev" || got.Groups[1] != "ops" ||
		!got.NotBefore.Equal(t0) || !got.NotAfter.Equal(t0.Add(time.Hour)) ||
		got.IPv4 != c.IPv4 || got.IPv6 != c.IPv6 || !got.Issuer.Equal(pub) {
		t.Fatalf("parsed %+v\nwant %+v", got, c)
	}
	if !bytes.Equal(got.Marshal(), b) {
		t.Fatal("Marshal differs from the parsed bytes")
	}
	if err := got.Verify(pub, id, t0.Add(time.Minute)); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := c.Verify(pub, id, t0.Add(time.Minute)); err != nil {
		t.Fatalf("verify the signed template: %v", err)
	}
	// Through a file: PEM armour and back.
	p, err := cert.EncodePEM(b)
	if err != nil {
		t.Fatal(err)
	}
	kind, raw, err := cert.Decode(p)
	if err != nil || kind != cert.KindCertificate || !bytes.Equal(raw, b) {
		t.Fatalf("decode PEM: kind %d, %v", kind, err)
	}
	if kind, raw, err = cert.Decode(b); err != nil || kind != cert.KindCertificate || !bytes.Equal(raw, b) {
		t.Fatalf("decode raw: kind %d, %v", kind, err)
	}
	// The parser keeps its own copy.
	b[len(b)-1] ^= 1
	if err := got.Verify(pub, id, t0.Add(time.Minute)); err != nil {
		t.Fatalf("verify after the caller reused its buffer: %v", err)
	}
}

// Every refusal reason, as Verify returns it and ReasonOf names it.
func TestVerifyReasons(t *testing.T) {
	pub, priv := newCA(t)
	otherPub, otherPriv := newCA(t)
	id, other := newPeer(t), newPeer(t)
	good, b := issue(t, priv, id, "alice")
	foreign, _ := issue(t, otherPriv, id, "alice")
	flipped := bytes.Clone(b)
	flipped[len(flipped)-1] ^= 0x01 // the signature's last byte
	badSig, err := cert.ParseCertificate(flipped)
	if err != nil {
		t.Fatal(err)
	}
	end := good.NotAfter
	for _, tc := range []struct {
		name string
		c    *cert.Certificate
		ca   ed25519.PublicKey
		id   peer.ID
		now  time.Time
		want error
		r    cert.Reason
	}{
		{"valid", good, pub, id, t0, nil, cert.ReasonNone},
		{"valid at the last second", good, pub, id, end.Add(-time.Nanosecond), nil, cert.ReasonNone},
		{"unknown CA", foreign, pub, id, t0, cert.ErrUnknownCA, cert.ReasonUnknownCA},
		{"verifier of another CA", good, otherPub, id, t0, cert.ErrUnknownCA, cert.ReasonUnknownCA},
		{"no CA key", good, nil, id, t0, cert.ErrUnknownCA, cert.ReasonUnknownCA},
		{"bad signature", badSig, pub, id, t0, cert.ErrBadSignature, cert.ReasonBadSignature},
		{"another peer", good, pub, other, t0, cert.ErrPeerMismatch, cert.ReasonPeerMismatch},
		{"not yet valid", good, pub, id, t0.Add(-time.Second), cert.ErrNotYetValid, cert.ReasonNotYetValid},
		{"expired at not_after", good, pub, id, end, cert.ErrExpired, cert.ReasonExpired},
		{"expired", good, pub, id, end.Add(time.Hour), cert.ErrExpired, cert.ReasonExpired},
		{"unsigned", &cert.Certificate{Name: "x"}, pub, id, t0, cert.ErrMalformed, cert.ReasonMalformed},
		{"nil", nil, pub, id, t0, cert.ErrMalformed, cert.ReasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Verify(tc.ca, tc.id, tc.now)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v; want %v", err, tc.want)
			}
			if r := cert.ReasonOf(err); r != tc.r {
				t.Fatalf("ReasonOf(%v) = %q, want %q", err, r, tc.r)
			}
			if tc.r != cert.ReasonNone && tc.r.Err() != tc.want {
				t.Fatalf("%q.Err() = %v", tc.r, tc.r.Err())
			}
		})
	}
	if _, err := cert.ParseCertificate([]byte("junk")); cert.ReasonOf(err) != cert.ReasonMalformed {
		t.Fatalf("parse junk: %v, reason %q", err, cert.ReasonOf(err))
	}
	if r := cert.ReasonOf(errors.New("other")); r != cert.ReasonMalformed {
		t.Fatalf("ReasonOf(unknown error) = %q", r)
	}
}

// tamper flips every bit pattern of every byte of doc and requires that
// check refuse each result.
func tamper(t *testing.T, doc []byte, check func([]byte) error) {
	t.Helper()
	for i := range doc {
		for _, mask := range []byte{0x01, 0x20, 0x80, 0xff} {
			b := bytes.Clone(doc)
			b[i] ^= mask
			if err := check(b); err == nil {
				t.Fatalf("byte %d ^ %#02x accepted", i, mask)
			}
		}
	}
	if err := check(doc); err != nil {
		t.Fatalf("untampered document refused: %v", err)
	}
	if err := check(append(bytes.Clone(doc), 0)); err == nil {
		t.Fatal("a byte appended: accepted")
	}
	if err := check(doc[:len(doc)-1]); err == nil {
		t.Fatal("the last byte cut: accepted")
	}
}

func TestCertificateTamper(t *testing.T) {
	pub, priv := newCA(t)
	id := newPeer(t)
	s, _ := cert.NewSerial()
	c := &cert.Certificate{Serial: s, Peer: id, Name: "db", Groups: []string{"servers"},
		NotBefore: t0, NotAfter: t0.Add(time.Hour), IPv4: netip.MustParseAddr("100.64.1.2")}
	b, err := c.Sign(priv)
	if err != nil {
		t.Fatal(err)
	}
	tamper(t, b, func(b []byte) error {
		c, err := cert.ParseCertificate(b)
		if err != nil {
			return err
		}
		return c.Verify(pub, id, t0)
	})
}

func TestParseCertificateMalformed(t *testing.T) {
	_, priv := newCA(t)
	_, b := issue(t, priv, newPeer(t), "a")
	huge := bytes.Clone(b)
	huge[4], huge[5], huge[6], huge[7] = 0xff, 0xff, 0xff, 0xff
	wrongVersion := bytes.Clone(b)
	wrongVersion[3] = 2
	rl, err := (*cert.RevocationList)(nil).Revoke(cert.Serial{1}, "").Sign(priv, t0)
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{
		"empty":            nil,
		"short":            b[:10],
		"bad magic":        append([]byte("xx"), b[2:]...),
		"body over cap":    huge,
		"format version 2": wrongVersion,
		"revocation list":  rl,
	} {
		if _, err := cert.ParseCertificate(in); !errors.Is(err, cert.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// A signer refuses what a reader would refuse.
func TestSignRefusesBadFields(t *testing.T) {
	_, priv := newCA(t)
	id := newPeer(t)
	s, _ := cert.NewSerial()
	ok := func() cert.Certificate {
		return cert.Certificate{Serial: s, Peer: id, Name: "a", NotBefore: t0, NotAfter: t0.Add(time.Hour)}
	}
	many := make([]string, cert.MaxGroups+1)
	for i := range many {
		many[i] = "g" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	for name, mod := range map[string]func(*cert.Certificate){
		"zero serial":     func(c *cert.Certificate) { c.Serial = cert.Serial{} },
		"no peer":         func(c *cert.Certificate) { c.Peer = "" },
		"bad name":        func(c *cert.Certificate) { c.Name = "Alice" },
		"bad group":       func(c *cert.Certificate) { c.Groups = []string{"a b"} },
		"too many groups": func(c *cert.Certificate) { c.Groups = many },
		"empty window":    func(c *cert.Certificate) { c.NotAfter = c.NotBefore },
		"ipv6 as ipv4":    func(c *cert.Certificate) { c.IPv4 = netip.MustParseAddr("fd00::1") },
		"ipv4 as ipv6":    func(c *cert.Certificate) { c.IPv6 = netip.MustParseAddr("::ffff:100.64.0.1") },
	} {
		c := ok()
		mod(&c)
		if _, err := c.Sign(priv); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
	c := ok()
	if _, err := c.Sign(priv[:10]); err == nil {
		t.Error("short key: signed")
	}
}

func TestValidName(t *testing.T) {
	for _, n := range []string{"a", "laptop-1", "0", "x" + string(bytes.Repeat([]byte("y"), 62))} {
		if err := cert.ValidName(n); err != nil {
			t.Errorf("ValidName(%q): %v", n, err)
		}
	}
	for _, n := range []string{"", "-a", "a-", "A", "a.b", "a_b", "ä", "a b", string(bytes.Repeat([]byte("y"), 64))} {
		if err := cert.ValidName(n); err == nil {
			t.Errorf("ValidName(%q) accepted", n)
		}
	}
}

func TestKeys(t *testing.T) {
	pub, priv := newCA(t)
	got, err := cert.ParsePublicKey(cert.MarshalPublicKey(pub))
	if err != nil || !got.Equal(pub) {
		t.Fatalf("public key PEM round trip: %v", err)
	}
	if got, err = cert.ParsePublicKey([]byte(cert.EncodePublicKey(pub) + "\n")); err != nil || !got.Equal(pub) {
		t.Fatalf("public key base64 round trip: %v", err)
	}
	gotPriv, err := cert.ParsePrivateKey(cert.MarshalPrivateKey(priv))
	if err != nil || !gotPriv.Equal(priv) {
		t.Fatalf("private key round trip: %v", err)
	}
	if _, err := cert.ParsePublicKey(cert.MarshalPrivateKey(priv)); err == nil {
		t.Fatal("a private key file taken for a public key")
	}
	if _, err := cert.ParsePrivateKey(cert.MarshalPublicKey(pub)); err == nil {
		t.Fatal("a public key file taken for a private key")
	}
	if len(cert.Fingerprint(pub)) != 16 {
		t.Fatalf("fingerprint %q", cert.Fingerprint(pub))
	}
}

// BenchmarkVerify measures what certificate checks add to a handshake on
// the receiving side: "handshake" parses the presented certificate,
// verifies it and looks it up in a revocation list of 1,000 serials;
// "parse" and "verify" are its two main parts.
func BenchmarkVerify(b *testing.B) {
	pub, priv := newCA(b)
	id := newPeer(b)
	c, doc := issue(b, priv, id, "bench", "a", "b", "c")
	var rl *cert.RevocationList
	for i := 0; i < 1000; i++ {
		s, _ := cert.NewSerial()
		rl = rl.Revoke(s, "")
	}
	b.Run("handshake", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := cert.ParseCertificate(doc)
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Verify(pub, id, t0); err != nil {
				b.Fatal(err)
			}
			if err := rl.Check(c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cert.ParseCertificate(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Verify(pub, id, t0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The largest certificate the format allows fits its cap: every field at
// its longest.
func TestLargestCertificateFits(t *testing.T) {
	pub, priv := newCA(t)
	id := newPeer(t)
	s, _ := cert.NewSerial()
	long := func(i int) string {
		b := bytes.Repeat([]byte("x"), cert.MaxLabelLen)
		b[0], b[1] = byte('a'+i%26), byte('a'+i/26)
		return string(b)
	}
	c := &cert.Certificate{Serial: s, Peer: id, Name: long(99), NotBefore: t0, NotAfter: t0.Add(100 * 365 * 24 * time.Hour),
		IPv4: netip.MustParseAddr("100.127.255.255"), IPv6: netip.MustParseAddr("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}
	for i := 0; i < cert.MaxGroups; i++ {
		c.Groups = append(c.Groups, long(i))
	}
	b, err := c.Sign(priv)
	if err != nil {
		t.Fatalf("sign the largest certificate: %v", err)
	}
	if max := cert.MaxCertificateBody * 3 / 4; len(b) > max {
		t.Errorf("largest certificate %d bytes; keep a quarter of the cap (%d) free for later fields", len(b), cert.MaxCertificateBody)
	}
	got, err := cert.ParseCertificate(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(pub, id, t0); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeFiles(t *testing.T) {
	_, priv := newCA(t)
	_, b := issue(t, priv, newPeer(t), "a")
	p, _ := cert.EncodePEM(b)
	unknown := bytes.Clone(b)
	unknown[2] = 0x09
	for name, in := range map[string][]byte{
		"trailing data":     append(bytes.Clone(p), "more"...),
		"wrong PEM type":    bytes.Replace(p, []byte("OVERLAY CERTIFICATE"), []byte("OVERLAY POLICY"), 2),
		"not PEM":           []byte("hello"),
		"raw of no kind":    unknown,
		"over the file cap": make([]byte, cert.MaxFileSize+1),
		"PEM of a CA key":   cert.MarshalPublicKey(priv.Public().(ed25519.PublicKey)),
		"PEM holding junk":  []byte("-----BEGIN OVERLAY CERTIFICATE-----\naGVsbG8=\n-----END OVERLAY CERTIFICATE-----\n"),
	} {
		if _, _, err := cert.Decode(in); !errors.Is(err, cert.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
