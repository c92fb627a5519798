package cert

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// sealRaw signs body bytes as they are, canonical or not.
func sealRaw(kind byte, body []byte, key ed25519.PrivateKey) []byte {
	b := make([]byte, headerSize, headerSize+len(body)+signatureSize)
	b[0], b[1], b[2], b[3] = magic0, magic1, kind, FormatVersion
	binary.BigEndian.PutUint32(b[4:8], uint32(len(body)))
	b = append(b, body...)
	return append(b, ed25519.Sign(key, signedMessage(b))...)
}

// Bodies the CA did sign but a reader must still refuse: the signature
// makes a document authentic, not well formed.
func TestSignedMalformedBodies(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	ca := []byte(key.Public().(ed25519.PublicKey))
	const id = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
	base := func() certWire {
		return certWire{Serial: strings.Repeat("ab", 16), Peer: id, Name: "a", NotBefore: 1, NotAfter: 2, CA: ca}
	}
	_, b, err := seal(KindCertificate, base(), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCertificate(b); err != nil {
		t.Fatalf("the well-formed base: %v", err)
	}
	env, _ := open(b, KindCertificate)
	canon := string(env.body)
	for name, mod := range map[string]func(*certWire){
		"bad serial":       func(w *certWire) { w.Serial = "zz" },
		"zero serial":      func(w *certWire) { w.Serial = strings.Repeat("0", 32) },
		"bad peer":         func(w *certWire) { w.Peer = "nobody" },
		"bad name":         func(w *certWire) { w.Name = "A" },
		"bad ipv4":         func(w *certWire) { w.IPv4 = "fd00::1" },
		"bad ipv6":         func(w *certWire) { w.IPv6 = "100.64.0.1" },
		"not an address":   func(w *certWire) { w.IPv4 = "x" },
		"groups unsorted":  func(w *certWire) { w.Groups = []string{"b", "a"} },
		"groups repeated":  func(w *certWire) { w.Groups = []string{"a", "a"} },
		"window reversed":  func(w *certWire) { w.NotBefore, w.NotAfter = 2, 1 },
		"short CA key":     func(w *certWire) { w.CA = ca[:31] },
		"serial in caps":   func(w *certWire) { w.Serial = strings.Repeat("AB", 16) },
		"peer as a CID":    func(w *certWire) { w.Peer = cidOf(t, id) },
		"ipv6 spelled out": func(w *certWire) { w.IPv6 = "fd00:0:0:0:0:0:0:1" },
		"ipv4 with zeros":  func(w *certWire) { w.IPv4 = "100.064.0.1" },
	} {
		w := base()
		mod(&w)
		_, b, err := seal(KindCertificate, w, key)
		if err != nil {
			t.Fatalf("%s: seal: %v", name, err)
		}
		if _, err := ParseCertificate(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// The same fields, encoded otherwise: each refused.
	for name, body := range map[string]string{
		"unknown field":      strings.Replace(canon, `{`, `{"admin":true,`, 1),
		"keys reordered":     `{"peer":"` + id + `",` + strings.Replace(canon, `"peer":"`+id+`",`, "", 1)[1:],
		"duplicate key":      strings.Replace(canon, `"name":"a"`, `"name":"b","name":"a"`, 1),
		"key case":           strings.Replace(canon, `"name"`, `"Name"`, 1),
		"whitespace":         strings.Replace(canon, `,`, `, `, 1),
		"empty groups":       strings.Replace(canon, `"name":"a",`, `"name":"a","groups":[],`, 1),
		"null groups":        strings.Replace(canon, `"name":"a",`, `"name":"a","groups":null,`, 1),
		"escaped letter":     strings.Replace(canon, `"name":"a"`, `"name":"\u0061"`, 1),
		"trailing object":    canon + ` {}`,
		"not an object":      `[1]`,
		"empty":              ``,
		"number as float":    strings.Replace(canon, `"not_before":1`, `"not_before":1.0`, 1),
		"number with a plus": strings.Replace(canon, `"not_before":1`, `"not_before":+1`, 1),
	} {
		if body == canon {
			t.Fatalf("%s: the edit changed nothing", name)
		}
		if _, err := ParseCertificate(sealRaw(KindCertificate, []byte(body), key)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// A body over the cap is refused by the signer too.
	if _, _, err := seal(KindCertificate, map[string]string{"x": strings.Repeat("a", MaxCertificateBody)}, key); err == nil {
		t.Fatal("sealed a body over the cap")
	}
}

// Policies and lists are held to the canonical form too.
func TestCanonicalListAndPolicy(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	p := &Policy{Version: 1, Default: Allow, Rules: []Rule{{Name: "r", Action: Allow, From: []string{"*"}, To: []string{"*"}, Messages: true}}}
	b, err := p.Sign(key, t0())
	if err != nil {
		t.Fatal(err)
	}
	env, _ := open(b, KindPolicy)
	body := strings.Replace(string(env.body), `"messages":true`, `"messages":true,"services":[]`, 1)
	if _, err := ParsePolicy(sealRaw(KindPolicy, []byte(body), key)); !errors.Is(err, ErrMalformed) {
		t.Errorf("policy with an empty services array: %v", err)
	}
	body = strings.Replace(string(env.body), `"messages":true`, `"messages":true,"ports":["tcp/22"],"ports":[]`, 1)
	if _, err := ParsePolicy(sealRaw(KindPolicy, []byte(body), key)); !errors.Is(err, ErrMalformed) {
		t.Errorf("policy with a duplicate key: %v", err)
	}
	l := (*RevocationList)(nil).Revoke(Serial{1}, "")
	if b, err = l.Sign(key, t0()); err != nil {
		t.Fatal(err)
	}
	env, _ = open(b, KindRevocations)
	body = strings.Replace(string(env.body), `"serials":[`, `"peers":[],"serials":[`, 1)
	if _, err := ParseRevocations(sealRaw(KindRevocations, []byte(body), key)); !errors.Is(err, ErrMalformed) {
		t.Errorf("list with keys reordered: %v", err)
	}
}

func t0() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }

// cidOf spells a peer ID as a CIDv1, which peer.Decode accepts too.
func cidOf(t *testing.T, id string) string {
	p, err := peer.Decode(id)
	if err != nil {
		t.Fatal(err)
	}
	return peer.ToCid(p).String()
}
