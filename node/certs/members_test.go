package certs_test

import (
	"errors"
	"testing"
	"time"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node/certs"
)

// Members: the newer certificate owns a name; when its holder's
// certificate lapses, the name goes to the newest one left.
func TestMembersNames(t *testing.T) {
	ca := newCA(t)
	now := time.Now()
	self := newMember(t, ca, "self", now.Add(-time.Hour), now.Add(time.Hour))
	var clk clock
	m, err := certs.New(certs.Config{CA: ca.pub, CertFile: self.file, Self: self.id, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	a := newMember(t, ca, "db", now.Add(-3*time.Hour), now.Add(10*time.Hour))
	b := newMember(t, ca, "db", now.Add(-time.Hour), now.Add(2*time.Hour)) // newer, expires first
	c := newMember(t, ca, "db", now.Add(-2*time.Hour), now.Add(10*time.Hour))
	if owns, d := m.Members.Admit(a.id, a.cert); !owns || d != "" {
		t.Fatalf("first holder: owns %v, displaced %q", owns, d)
	}
	if owns, d := m.Members.Admit(b.id, b.cert); !owns || d != a.id {
		t.Fatalf("newer holder: owns %v, displaced %q", owns, d)
	}
	if owns, _ := m.Members.Admit(c.id, c.cert); owns {
		t.Fatal("an older certificate took the name")
	}
	if p, _ := m.Members.Lookup("db"); p != b.id {
		t.Fatalf("db is %s, want the newest certificate's peer", p)
	}
	// The same certificate again (a reconnect) changes nothing.
	if owns, d := m.Members.Admit(b.id, b.cert); !owns || d != "" {
		t.Fatalf("reconnect: owns %v, displaced %q", owns, d)
	}
	clk.jump(3 * time.Hour)
	gone := m.Members.Sweep(clk.now())
	if len(gone) != 1 || gone[0].Peer != b.id || !errors.Is(gone[0].Err, cert.ErrExpired) {
		t.Fatalf("sweep: %+v", gone)
	}
	if p, _ := m.Members.Lookup("db"); p != c.id {
		t.Fatalf("after the owner's expiry db is %s, want the newest left (%s)", p, c.id)
	}
	if err := m.Members.Vouch(b.id); err == nil {
		t.Fatal("vouched for a swept member")
	}
	if err := m.Members.Vouch(c.id); err != nil {
		t.Fatalf("vouch for a valid member: %v", err)
	}
}
