package cert_test

import (
	"crypto/ed25519"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
)

// fuzzCA is a fixed CA, so that seeds signed by it verify.
var fuzzCA = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

func fuzzPeer(f *testing.F) peer.ID {
	k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed([]byte("fuzz-peer-fuzz-peer-fuzz-peer-32")))
	if err != nil {
		f.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		f.Fatal(err)
	}
	return id
}

func FuzzParseCertificate(f *testing.F) {
	id := fuzzPeer(f)
	_, b := issue(f, fuzzCA, id, "seed", "a", "b")
	f.Add(b)
	f.Add(b[:40])
	f.Add([]byte("ov\x01\x01\x00\x00\x00\x02{}"))
	pub := fuzzCA.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := cert.ParseCertificate(b)
		if err != nil {
			if cert.ReasonOf(err) != cert.ReasonMalformed {
				t.Fatalf("parse error of reason %q: %v", cert.ReasonOf(err), err)
			}
			return
		}
		_ = c.Verify(pub, id, t0)
		if _, err := cert.ParseCertificate(c.Marshal()); err != nil {
			t.Fatalf("reparse: %v", err)
		}
		if c.Member().Name != c.Name {
			t.Fatal("member name")
		}
	})
}

func FuzzParseRevocations(f *testing.F) {
	id := fuzzPeer(f)
	l := (*cert.RevocationList)(nil).Revoke(cert.Serial{7}, id)
	b, err := l.Sign(fuzzCA, t0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("ov\x02\x01\x00\x00\x00\x02{}"))
	pub := fuzzCA.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := cert.ParseRevocations(b)
		if err != nil {
			return
		}
		_ = l.Verify(pub)
		_ = l.RevokesPeer(id)
		if len(l.Serials) > 0 && !l.RevokesSerial(l.Serials[0]) {
			t.Fatal("a listed serial is not revoked")
		}
		if len(l.Peers) > 0 && !l.RevokesPeer(l.Peers[0]) {
			t.Fatal("a listed peer is not revoked")
		}
		if _, err := cert.ParseRevocations(l.Marshal()); err != nil {
			t.Fatalf("reparse: %v", err)
		}
	})
}

func FuzzParsePolicy(f *testing.F) {
	id := fuzzPeer(f)
	p := &cert.Policy{Version: 3, Default: cert.Deny, Rules: []cert.Rule{
		{Name: "r1", Action: cert.Allow, From: []string{"group:a", "peer:" + id.String()}, To: []string{"*"},
			Messages: true, Services: []string{"ssh"}, Ports: []string{"tcp/22", "udp/1-9", "icmp", "*"}},
	}}
	b, err := p.Sign(fuzzCA, t0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("ov\x03\x01\x00\x00\x00\x02{}"))
	pub := fuzzCA.Public().(ed25519.PublicKey)
	m := cert.Member{Peer: id, Name: "m", Groups: []string{"a"}}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := cert.ParsePolicy(b)
		if err != nil {
			return
		}
		_ = p.Verify(pub)
		for _, a := range []cert.Action{{Kind: cert.ActionMessage}, {Kind: cert.ActionTunnel, Service: "ssh"},
			{Kind: cert.ActionIP, Proto: "tcp", Port: 22}, {Kind: cert.ActionIP, Proto: "icmp"}} {
			d := p.Allows(m, m, a)
			if d.Rule == "" {
				t.Fatal("a decision names no rule")
			}
		}
		if _, err := cert.ParsePolicy(p.Marshal()); err != nil {
			t.Fatalf("reparse: %v", err)
		}
	})
}

// FuzzDecodeFile feeds the readers of local files: a document file (PEM or
// raw) and the CA's key files.
func FuzzDecodeFile(f *testing.F) {
	id := fuzzPeer(f)
	_, b := issue(f, fuzzCA, id, "seed")
	p, err := cert.EncodePEM(b)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p)
	f.Add(b)
	f.Add(cert.MarshalPublicKey(fuzzCA.Public().(ed25519.PublicKey)))
	f.Add(cert.MarshalPrivateKey(fuzzCA))
	f.Add([]byte(cert.EncodePublicKey(fuzzCA.Public().(ed25519.PublicKey))))
	f.Fuzz(func(t *testing.T, b []byte) {
		if kind, doc, err := cert.Decode(b); err == nil {
			if p, err := cert.EncodePEM(doc); err == nil {
				if k2, d2, err := cert.Decode(p); err != nil || k2 != kind || string(d2) != string(doc) {
					t.Fatalf("PEM round trip: %v", err)
				}
			}
		}
		if pub, err := cert.ParsePublicKey(b); err == nil && len(pub) != ed25519.PublicKeySize {
			t.Fatalf("public key of %d bytes", len(pub))
		}
		if priv, err := cert.ParsePrivateKey(b); err == nil && len(priv) != ed25519.PrivateKeySize {
			t.Fatalf("private key of %d bytes", len(priv))
		}
	})
}
