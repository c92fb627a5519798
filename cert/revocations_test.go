package cert_test

import (
	"errors"
	"testing"
	"time"

	"github.com/overlay-net/overlay/cert"
)

func TestRevocations(t *testing.T) {
	pub, priv := newCA(t)
	alice, bob, carol := newPeer(t), newPeer(t), newPeer(t)
	ca, _ := issue(t, priv, alice, "alice")
	cb, _ := issue(t, priv, bob, "bob")
	cc, _ := issue(t, priv, carol, "carol")

	var none *cert.RevocationList
	if none.IsRevoked(ca) {
		t.Fatal("a nil list revokes")
	}
	v1 := none.Revoke(ca.Serial, "")
	b1, err := v1.Sign(priv, t0)
	if err != nil {
		t.Fatal(err)
	}
	v2 := v1.Revoke(cert.Serial{}, bob)
	b2, err := v2.Sign(priv, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	l1, err := cert.ParseRevocations(b1)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := cert.ParseRevocations(b2)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []*cert.RevocationList{l1, l2} {
		if err := l.Verify(pub); err != nil {
			t.Fatalf("verify version %d: %v", l.Version, err)
		}
	}
	if l1.Version != 1 || l2.Version != 2 || len(l2.Serials) != 1 || len(l2.Peers) != 1 || !l2.Issued.Equal(t0.Add(time.Minute)) {
		t.Fatalf("lists %+v, %+v", l1, l2)
	}
	for _, tc := range []struct {
		l    *cert.RevocationList
		c    *cert.Certificate
		want bool
	}{
		{l1, ca, true}, {l1, cb, false}, {l1, cc, false},
		{l2, ca, true}, {l2, cb, true}, {l2, cc, false},
	} {
		if got := tc.l.IsRevoked(tc.c); got != tc.want {
			t.Errorf("version %d IsRevoked(%s) = %v", tc.l.Version, tc.c.Name, got)
		}
	}
	for _, tc := range []struct {
		l    *cert.RevocationList
		c    *cert.Certificate
		want error
	}{{nil, ca, nil}, {l2, ca, cert.ErrRevoked}, {l2, cb, cert.ErrRevoked}, {l2, cc, nil}} {
		err := tc.l.Check(tc.c)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("Check(%s): %v, want %v", tc.c.Name, err, tc.want)
		}
		if tc.want != nil && cert.ReasonOf(err) != cert.ReasonRevoked {
			t.Errorf("ReasonOf(%v) = %q", err, cert.ReasonOf(err))
		}
	}
	if !l2.RevokesPeer(bob) || l2.RevokesPeer(alice) || !l2.RevokesSerial(ca.Serial) {
		t.Fatal("RevokesPeer/RevokesSerial")
	}
	// Rollback: the older list does not supersede the newer one.
	if !l2.Newer(l1) || l1.Newer(l2) || l2.Newer(l2) || !l1.Newer(nil) {
		t.Fatal("Newer: a rollback or a replay taken for news")
	}
	// Revoking twice changes nothing but the version.
	if v3 := l2.Revoke(ca.Serial, bob); len(v3.Serials) != 1 || len(v3.Peers) != 1 || v3.Version != 3 {
		t.Fatalf("revoked twice: %+v", v3)
	}
	// Another CA's list.
	otherPub, otherPriv := newCA(t)
	bo, err := none.Revoke(cert.Serial{}, alice).Sign(otherPriv, t0)
	if err != nil {
		t.Fatal(err)
	}
	lo, err := cert.ParseRevocations(bo)
	if err != nil {
		t.Fatal(err)
	}
	if err := lo.Verify(pub); !errors.Is(err, cert.ErrUnknownCA) {
		t.Fatalf("another CA's list: %v", err)
	}
	if err := lo.Verify(otherPub); err != nil {
		t.Fatal(err)
	}
	if err := (&cert.RevocationList{}).Verify(pub); !errors.Is(err, cert.ErrMalformed) {
		t.Fatalf("unsigned list: %v", err)
	}
	tamper(t, b2, func(b []byte) error {
		l, err := cert.ParseRevocations(b)
		if err != nil {
			return err
		}
		return l.Verify(pub)
	})
}

func TestRevocationsCap(t *testing.T) {
	_, priv := newCA(t)
	l := &cert.RevocationList{Version: 1}
	for i := 0; i <= cert.MaxRevocations; i++ {
		var s cert.Serial
		s[0], s[1], s[15] = byte(i>>8), byte(i), 1
		l.Serials = append(l.Serials, s)
	}
	if _, err := l.Sign(priv, t0); err == nil {
		t.Fatalf("signed %d entries", len(l.Serials))
	}
	l.Serials = l.Serials[:cert.MaxRevocations]
	b, err := l.Sign(priv, t0)
	if err != nil {
		t.Fatalf("sign %d entries: %v", len(l.Serials), err)
	}
	if _, err := cert.ParseRevocations(b); err != nil {
		t.Fatalf("parse %d entries (%d bytes): %v", len(l.Serials), len(b), err)
	}
}
