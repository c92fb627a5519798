package cert

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

// Bodies the CA did sign but a reader must still refuse: the signature
// makes a document authentic, not well formed.
func TestSignedMalformedBodies(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	ca := []byte(key.Public().(ed25519.PublicKey))
	const id = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
	cert := func(extra string) map[string]any {
		m := map[string]any{"serial": strings.Repeat("ab", 16), "peer": id, "name": "a",
			"not_before": 1, "not_after": 2, "ca": ca}
		if extra != "" {
			k, v, _ := strings.Cut(extra, "=")
			m[k] = v
		}
		return m
	}
	if _, b, err := seal(KindCertificate, cert(""), key); err != nil {
		t.Fatal(err)
	} else if _, err := ParseCertificate(b); err != nil {
		t.Fatalf("the well-formed base: %v", err)
	}
	for name, body := range map[string]any{
		"unknown field":  cert("admin=true"),
		"bad serial":     cert("serial=zz"),
		"bad peer":       cert("peer=nobody"),
		"bad name":       cert("name=A"),
		"bad ipv4":       cert("ipv4=fd00::1"),
		"bad ipv6":       cert("ipv6=100.64.0.1"),
		"not an address": cert("ipv4=x"),
		"not an object":  []int{1},
		"groups unsorted": func() map[string]any {
			m := cert("")
			m["groups"] = []string{"b", "a"}
			return m
		}(),
		"groups empty": func() map[string]any {
			m := cert("")
			m["groups"] = []string{}
			return m
		}(),
	} {
		_, b, err := seal(KindCertificate, body, key)
		if err != nil {
			t.Fatalf("%s: seal: %v", name, err)
		}
		if _, err := ParseCertificate(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// Data after the JSON object, inside the signed body.
	_, b, err := seal(KindCertificate, cert(""), key)
	if err != nil {
		t.Fatal(err)
	}
	env, _ := open(b, KindCertificate)
	body := append(append([]byte(nil), env.body...), []byte(" {}")...)
	if err := decodeBody(body, &certWire{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing object: %v", err)
	}
	// A body over the cap is refused by the signer too.
	if _, _, err := seal(KindCertificate, map[string]string{"x": strings.Repeat("a", MaxCertificateBody)}, key); err == nil {
		t.Fatal("sealed a body over the cap")
	}
}
