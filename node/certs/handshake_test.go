package certs_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/certs"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
)

// TestCertificateRefusals runs every refusal of certificate mode between
// two real nodes on loopback: the dialer is refused, and each side words
// the refusal for itself and counts it.
func TestCertificateRefusals(t *testing.T) {
	ca := newCA(t)
	nb, na := valid()
	now := time.Now()
	type setup struct {
		dialer, host []nt.Option
	}
	cases := []struct {
		name  string
		setup func(t *testing.T) setup
		code  protocol.RejectCode
		// dialerSays is in the dialer's error and book entry (refused by
		// peer); hostSays in the host's book entry (refused by self).
		dialerSays, hostSays string
		// mismatch, for a mode mismatch, is the dialer's own refusal of
		// the host's hello, which may come first (see below).
		mismatch string
	}{
		{"expired", func(t *testing.T) setup {
			d := newMember(t, ca, "old", now.Add(-48*time.Hour), now.Add(-time.Hour))
			h := newMember(t, ca, "host", nb, na)
			return setup{d.opts(ca), h.opts(ca)}
		}, protocol.CodeCertExpired,
			"certificate expired: the peer refused this node's certificate, which has expired",
			"peer's certificate refused: certificate expired: certificate \"old\" expired at", ""},
		{"not yet valid", func(t *testing.T) setup {
			d := newMember(t, ca, "early", now.Add(time.Hour), now.Add(48*time.Hour))
			h := newMember(t, ca, "host", nb, na)
			return setup{d.opts(ca), h.opts(ca)}
		}, protocol.CodeCertNotYetValid,
			"certificate not yet valid: the peer says this node's certificate is not valid yet",
			"certificate not yet valid: certificate \"early\" is valid from", ""},
		{"unknown CA", func(t *testing.T) setup {
			other := newCA(t)
			d := newMember(t, other, "stranger", nb, na)
			h := newMember(t, ca, "host", nb, na)
			return setup{d.opts(other), h.opts(ca)}
		}, protocol.CodeCertUnknownCA,
			"signed by an unknown CA: the peer trusts another CA than the one that signed this node's certificate",
			"signed by an unknown CA: issued by CA " + cert.Fingerprint(ca.pub)[:0], ""},
		{"revoked", func(t *testing.T) setup {
			d := newMember(t, ca, "stolen", nb, na)
			h := newMember(t, ca, "host", nb, na)
			l := (*cert.RevocationList)(nil).Revoke(d.cert.Serial, "")
			if _, err := l.Sign(ca.priv, now); err != nil {
				t.Fatal(err)
			}
			return setup{d.opts(ca), h.opts(ca, func(c *certs.Config) { c.Revoked = l.Check })}
		}, protocol.CodeCertRevoked,
			"certificate revoked: the peer holds a revocation list that revokes this node's certificate",
			"certificate revoked: certificate", ""},
		{"certificate required", func(t *testing.T) setup {
			h := newMember(t, ca, "host", nb, na)
			return setup{nil, h.opts(ca)}
		}, protocol.CodeCertRequired,
			"certificate required: the peer runs in certificate mode; this node has no certificate",
			"certificate required: this network runs in certificate mode (CA " + cert.Fingerprint(ca.pub) + ")",
			"certificate mode not used here: this network does not run in certificate mode"},
		{"certificate mode not used here", func(t *testing.T) setup {
			d := newMember(t, ca, "member", nb, na)
			return setup{d.opts(ca), nil}
		}, protocol.CodeCertUnused,
			"certificate mode not used here: the peer does not run in certificate mode; this node presents a certificate",
			"certificate mode not used here: this network does not run in certificate mode",
			"certificate required: this network runs in certificate mode"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.setup(t)
			host := nt.Relay(t, s.host...)
			dialer := nt.Relay(t, s.dialer...)
			_, err := dialer.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, host).String())
			if tc.mismatch != "" && err != nil && strings.Contains(err.Error(), tc.mismatch) {
				// A mode mismatch is refused by both sides by design: when
				// the host's own connection to the dialer (it learns the
				// dialer's addresses and may dial back) is checked first,
				// the dialer's refusal of the host's hello lands first.
				// Either order is right: here the dialer must book the host
				// as refused by itself, with that wording.
				nt.Eventually(t, 10*time.Second, "the dialer books the host as refused by itself", func() bool {
					a, _ := dialer.Book().Get(host.ID())
					return a.State == book.StateRejected && a.RefusedBy == book.RefusedBySelf && strings.Contains(a.Reason, tc.mismatch)
				})
				return
			}
			if !errors.Is(err, node.ErrRejected) || !strings.Contains(err.Error(), tc.dialerSays) {
				t.Fatalf("Connect = %v\nwant a refusal saying %q", err, tc.dialerSays)
			}
			nt.Eventually(t, 10*time.Second, "both book the other as rejected", func() bool {
				a, _ := dialer.Book().Get(host.ID())
				b, _ := host.Book().Get(dialer.ID())
				return a.State == book.StateRejected && b.State == book.StateRejected
			})
			a, _ := dialer.Book().Get(host.ID())
			b, _ := host.Book().Get(dialer.ID())
			if a.RefusedBy != book.RefusedByPeer || !strings.Contains(a.Reason, tc.dialerSays) {
				t.Errorf("dialer books %q by %s\nwant %q by peer", a.Reason, a.RefusedBy, tc.dialerSays)
			}
			if b.RefusedBy != book.RefusedBySelf || !strings.Contains(b.Reason, tc.hostSays) {
				t.Errorf("host books %q by %s\nwant %q by self", b.Reason, b.RefusedBy, tc.hostSays)
			}
			// Counted on each side that runs certificate mode.
			for _, c := range []struct {
				n    *node.Node
				side string
			}{{host, "self"}, {dialer, "peer"}} {
				if c.n.Certs() == nil {
					continue
				}
				k := certs.RefusalKey{Code: string(tc.code), RefusedBy: c.side, Where: "handshake"}
				if got := c.n.Certs().Refusals()[k]; got < 1 {
					t.Errorf("%s side counted %v, want %v", c.side, c.n.Certs().Refusals(), k)
				}
			}
		})
	}
}

// TestCertificateAdmitted: two members admit each other, and each books
// the other's name and groups.
func TestCertificateAdmitted(t *testing.T) {
	ca := newCA(t)
	nb, na := valid()
	dm := newMember(t, ca, "laptop", nb, na, "ops", "dev")
	hm := newMember(t, ca, "server", nb, na, "prod")
	host := nt.Relay(t, hm.opts(ca)...)
	dialer := nt.Relay(t, dm.opts(ca)...)
	if _, err := dialer.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, host).String()); err != nil {
		t.Fatal(err)
	}
	nt.Eventually(t, 10*time.Second, "both book the other as a member", func() bool {
		a, _ := dialer.Book().Get(host.ID())
		b, _ := host.Book().Get(dialer.ID())
		return a.State == book.StateMember && b.State == book.StateMember
	})
	a, _ := dialer.Book().Get(host.ID())
	b, _ := host.Book().Get(dialer.ID())
	if a.Name != "server" || strings.Join(a.Groups, ",") != "prod" {
		t.Errorf("dialer books the host as %q %v", a.Name, a.Groups)
	}
	if b.Name != "laptop" || strings.Join(b.Groups, ",") != "dev,ops" {
		t.Errorf("host books the dialer as %q %v", b.Name, b.Groups)
	}
	if p, ok := host.Certs().Members.Lookup("laptop"); !ok || p != dialer.ID() {
		t.Errorf("host resolves laptop to %s, %v", p, ok)
	}
	st := host.Status().Certificate
	if st == nil || st.Name != "server" || st.Expired || st.Warning != "" || st.CA != cert.Fingerprint(ca.pub) {
		t.Errorf("host's certificate status %+v", st)
	}
	if ok, why := host.Healthy(); !ok {
		t.Errorf("host unhealthy: %s", why)
	}
}
