package certs_test

import (
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	circuitclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/certs"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

func member2(t *testing.T, a, b *node.Node) {
	t.Helper()
	nt.Eventually(t, 10*time.Second, "both book the other as a member", func() bool {
		x, _ := a.Book().Get(b.ID())
		y, _ := b.Book().Get(a.ID())
		return x.State == book.StateMember && y.State == book.StateMember
	})
}

// TestCertificateRenewal: a renewed certificate file is taken without a
// restart and without dropping a connection, and new handshakes carry it;
// a broken renewal keeps the certificate in use and says why.
func TestCertificateRenewal(t *testing.T) {
	ca := newCA(t)
	nb, na := valid()
	am := newMember(t, ca, "laptop", nb, na)
	hm := newMember(t, ca, "host", nb, na)
	host := nt.Relay(t, hm.opts(ca)...)
	a := nt.Relay(t, am.opts(ca)...)
	if _, err := a.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, host).String()); err != nil {
		t.Fatal(err)
	}
	member2(t, a, host)
	conns := a.Host().Network().ConnsToPeer(host.ID())

	renewed := ca.issue(t, am.id, "laptop", time.Now().Add(-time.Minute), time.Now().Add(90*24*time.Hour), "ops")
	write(t, am.file, renewed)
	nt.Eventually(t, 10*time.Second, "the node uses the renewed certificate", func() bool {
		return a.Status().Certificate.Serial == renewed.Serial.String()
	})
	// The host learns the renewed certificate on the same connection.
	nt.Eventually(t, 10*time.Second, "the host holds the renewed certificate", func() bool {
		c, ok := host.Certs().Members.Get(a.ID())
		return ok && c.Serial == renewed.Serial
	})
	for _, c := range conns {
		if c.IsClosed() {
			t.Fatalf("connection %s closed by the renewal", c.ID())
		}
	}
	if e, _ := host.Book().Get(a.ID()); strings.Join(e.Groups, ",") != "ops" {
		t.Errorf("host books the renewed groups as %v", e.Groups)
	}
	if !a.IsMember(nt.Context(t, time.Second), host.ID()) || !host.IsMember(nt.Context(t, time.Second), a.ID()) {
		t.Fatal("membership lost on renewal")
	}
	// A new handshake carries the renewed certificate.
	cm := newMember(t, ca, "third", nb, na)
	c := nt.Relay(t, cm.opts(ca)...)
	if _, err := c.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, a).String()); err != nil {
		t.Fatal(err)
	}
	if got, ok := c.Certs().Members.Get(a.ID()); !ok || got.Serial != renewed.Serial {
		t.Fatalf("new handshake carried %v, want serial %s", got, renewed.Serial)
	}
	if e, _ := c.Book().Get(a.ID()); strings.Join(e.Groups, ",") != "ops" {
		t.Errorf("renewed groups not booked: %v", e.Groups)
	}

	// Broken renewals: not a certificate, and one for another peer ID.
	for _, bad := range []struct {
		write func()
		why   string
	}{
		{func() { _ = os.WriteFile(am.file, []byte("garbage"), 0o600) }, "malformed"},
		{func() { write(t, am.file, ca.issue(t, cm.id, "laptop", nb, na)) }, "peer ID mismatch"},
	} {
		bad.write()
		nt.Eventually(t, 10*time.Second, "the broken renewal is reported", func() bool {
			w := a.Status().Certificate.Warning
			return strings.Contains(w, "renewed certificate file not used") && strings.Contains(w, bad.why)
		})
		if s := a.Status().Certificate; s.Serial != renewed.Serial.String() {
			t.Fatalf("broken renewal replaced the certificate: %s", s.Serial)
		}
	}
	if w := a.Certs().Warnings(); len(w) == 0 {
		t.Error("health shows no warning of the broken renewal")
	}
	write(t, am.file, renewed)
	nt.Eventually(t, 10*time.Second, "the warning clears", func() bool {
		return a.Status().Certificate.Warning == ""
	})
}

// TestCertificateExpiry: when a member's certificate expires, its peers
// close their connections to it and refuse it from then on, both sides
// saying "certificate expired"; the expired node warns first, then is
// unhealthy.
func TestCertificateExpiry(t *testing.T) {
	ca := newCA(t)
	nb, _ := valid()
	am := newMember(t, ca, "laptop", nb, time.Now().Add(time.Hour))
	hm := newMember(t, ca, "host", nb, time.Now().Add(365*24*time.Hour))
	var hostClock, aClock clock
	reg := prometheus.NewRegistry()
	host := nt.Relay(t, append(hm.opts(ca, hostClock.opt()), func(c *node.Config) { c.Metrics = reg })...)
	a := nt.Relay(t, am.opts(ca, aClock.opt())...)

	// Within --cert-warn (7 days) of expiry: a warning, still healthy.
	if w := a.Status().Certificate.Warning; !strings.Contains(w, "certificate expires in") {
		t.Errorf("warning %q", w)
	}
	if ok, _ := a.Healthy(); !ok || len(a.Certs().Warnings()) == 0 {
		t.Error("expiring node: want healthy with a warning")
	}
	if _, err := a.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, host).String()); err != nil {
		t.Fatal(err)
	}
	member2(t, a, host)

	hostClock.jump(2 * time.Hour)
	nt.Eventually(t, 10*time.Second, "the host closes the expired member's connections", func() bool {
		e, _ := host.Book().Get(a.ID())
		return len(host.Host().Network().ConnsToPeer(a.ID())) == 0 && len(a.Host().Network().ConnsToPeer(host.ID())) == 0 &&
			e.State == book.StateRejected &&
			strings.Contains(e.Reason, "certificate expired")
	})
	k := certs.RefusalKey{Code: "cert-expired", RefusedBy: "self", Where: "sweep"}
	if host.Certs().Refusals()[k] != 1 {
		t.Errorf("sweep refusals %v", host.Certs().Refusals())
	}
	// The metrics say it too: the refusal, and the host's time left.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var swept, left bool
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetName() {
			case "overlay_certificate_refusals_total":
				swept = swept || labels["code"] == "cert-expired" && labels["where"] == "sweep" && m.GetCounter().GetValue() == 1
			case "overlay_certificate_expiry_seconds":
				left = m.GetGauge().GetValue() > 300*24*3600
			}
		}
	}
	if !swept || !left {
		t.Errorf("metrics: swept refusal %v, expiry gauge %v", swept, left)
	}
	_, err = a.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, host).String())
	if !errors.Is(err, node.ErrRejected) || !strings.Contains(err.Error(), "certificate expired") {
		t.Fatalf("expired node reconnecting: %v", err)
	}
	nt.Eventually(t, 10*time.Second, "both sides book certificate expired", func() bool {
		x, _ := a.Book().Get(host.ID())
		y, _ := host.Book().Get(a.ID())
		return strings.Contains(x.Reason, "certificate expired") && strings.Contains(y.Reason, "certificate expired")
	})

	aClock.jump(2 * time.Hour)
	if ok, why := a.Healthy(); ok || !strings.Contains(why, "certificate expired") {
		t.Errorf("expired node: Healthy = %v, %q", ok, why)
	}
	if s := a.Status().Certificate; !s.Expired || s.ExpiresIn >= 0 {
		t.Errorf("expired node's status %+v", s)
	}
}

// TestCertificateRelayReservation: a relay checks the certificate again
// before it grants a reservation: one revoked since the handshake is
// refused, and counted.
func TestCertificateRelayReservation(t *testing.T) {
	ca := newCA(t)
	nb, na := valid()
	rm := newMember(t, ca, "relay", nb, na)
	var revoked atomic.Bool
	rel := nt.Relay(t, rm.opts(ca, func(c *certs.Config) {
		c.SweepEvery = time.Hour // the reservation check alone, not the sweep
		c.Revoked = func(c *cert.Certificate) error {
			if revoked.Load() && c.Name == "laptop" {
				return cert.ErrRevoked
			}
			return nil
		}
	})...)
	pm := newMember(t, ca, "laptop", nb, na)
	p := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, rel)}, pm.opts(ca)...)
	nt.Eventually(t, 15*time.Second, "the member reserves", func() bool { return nt.Reserved(p, 1) })

	revoked.Store(true)
	ctx := network.WithAllowLimitedConn(nt.Context(t, 10*time.Second), "test")
	_, err := circuitclient.Reserve(ctx, p.Host(), peer.AddrInfo{ID: rel.ID()})
	var re circuitclient.ReservationError
	if !errors.As(err, &re) || re.Status != pbv2.Status_PERMISSION_DENIED {
		t.Fatalf("reservation after revocation: %v, want PERMISSION_DENIED", err)
	}
	k := certs.RefusalKey{Code: "cert-revoked", RefusedBy: "self", Where: "reservation"}
	if rel.Certs().Refusals()[k] < 1 {
		t.Errorf("relay counted %v", rel.Certs().Refusals())
	}

	// Recheck (a new revocation list) sweeps at once: the relay closes the
	// revoked member's connections, which drops its reservation.
	rel.Certs().Recheck()
	nt.Eventually(t, 10*time.Second, "the relay drops the revoked member", func() bool {
		e, _ := rel.Book().Get(p.ID())
		return len(rel.Host().Network().ConnsToPeer(p.ID())) == 0 && rel.Status().Service.Reservations == 0 &&
			strings.Contains(e.Reason, "certificate revoked")
	})
}

// TestCertificateNameConflict: of two certificates with one name, the
// newer one's peer owns the name, whichever connects first; the conflict
// is logged.
func TestCertificateNameConflict(t *testing.T) {
	ca := newCA(t)
	nb, na := valid()
	rec := &nt.LogRecorder{Level: slog.LevelWarn}
	hm := newMember(t, ca, "host", nb, na)
	host := nt.Relay(t, append(hm.opts(ca), nt.WithLogger(rec.Logger()))...)
	older := newMember(t, ca, "laptop", nb, na)
	newer := newMember(t, ca, "laptop", nb.Add(time.Minute), na)
	oldest := newMember(t, ca, "laptop", nb.Add(-time.Minute), na)
	var nodes []*node.Node
	for _, m := range []*member{older, newer, oldest} {
		n := nt.Relay(t, m.opts(ca)...)
		if _, err := n.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, host).String()); err != nil {
			t.Fatal(err)
		}
		member2(t, n, host)
		nodes = append(nodes, n)
	}
	names := func() []string {
		var out []string
		for _, n := range nodes {
			e, _ := host.Book().Get(n.ID())
			out = append(out, e.Name)
		}
		return out
	}
	if got := names(); !slices.Equal(got, []string{"", "laptop", ""}) {
		t.Errorf("book names %q, want only the newer certificate's peer named", got)
	}
	if p, _ := host.Certs().Members.Lookup("laptop"); p != newer.id {
		t.Errorf("laptop resolves to %s, want %s", p, newer.id)
	}
	conflicts := 0
	for _, r := range rec.Records() {
		if strings.Contains(r, "member name conflict") {
			conflicts++
		}
	}
	if conflicts != 2 {
		t.Errorf("logged %d conflicts, want 2:\n%s", conflicts, strings.Join(rec.Records(), "\n"))
	}
}

// TestCertificateRelayRefusesExpired: a private node whose certificate
// expired gets no reservation, and its relay standing says why, worded
// for it.
func TestCertificateRelayRefusesExpired(t *testing.T) {
	ca := newCA(t)
	nb, na := valid()
	rm := newMember(t, ca, "relay", nb, na)
	rel := nt.Relay(t, rm.opts(ca)...)
	pm := newMember(t, ca, "laptop", nb.Add(-48*time.Hour), time.Now().Add(-time.Hour))
	p := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, rel)}, pm.opts(ca)...)
	const want = "certificate expired: the relay refused this node's certificate, which has expired"
	nt.Eventually(t, 15*time.Second, "the relay standing names the expiry", func() bool {
		rs := p.Status().Relays
		return len(rs) == 1 && rs[0].State == "refused" && strings.Contains(rs[0].Reason, want)
	})
	if ok, why := p.Healthy(); ok || !strings.Contains(why, "certificate expired") {
		t.Errorf("Healthy = %v, %q", ok, why)
	}
	if rel.Status().Service.Reservations != 0 {
		t.Error("the relay holds a reservation for an expired member")
	}
}
