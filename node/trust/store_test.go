package trust_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node/trust"
	"github.com/overlay-net/overlay/node/trust/trusttest"
)

func newCA(t testing.TB) *trusttest.CA { return trusttest.New(t) }

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

func TestOfferNewerStaleRollback(t *testing.T) {
	c := newCA(t)
	s, err := trust.Open("", c.Pub)
	if err != nil {
		t.Fatal(err)
	}
	var changes []trust.Change
	cancel := s.Subscribe(func(ch trust.Change) { changes = append(changes, ch) })
	defer cancel()
	a, b := newPeer(t), newPeer(t)
	v1 := c.Revoke(a)
	v2 := c.Revoke(b)
	if changed, err := s.Offer(cert.KindRevocations, v2); !changed || err != nil {
		t.Fatalf("offer v2: changed=%v err=%v", changed, err)
	}
	if changed, err := s.Offer(cert.KindRevocations, v2); changed || !errors.Is(err, trust.ErrStale) {
		t.Fatalf("offer v2 again: changed=%v err=%v, want stale", changed, err)
	}
	if changed, err := s.Offer(cert.KindRevocations, v1); changed || !errors.Is(err, trust.ErrRollback) {
		t.Fatalf("offer v1 after v2: changed=%v err=%v, want rollback", changed, err)
	}
	if got := s.Revocations().Version; got != 2 {
		t.Fatalf("holding version %d, want 2", got)
	}
	for _, p := range []peer.ID{a, b} {
		if err := s.CheckPeer(p, nil); !errors.Is(err, cert.ErrRevoked) {
			t.Errorf("CheckPeer(%s) = %v, want revoked", p, err)
		}
	}
	if err := s.CheckPeer(newPeer(t), nil); err != nil {
		t.Errorf("CheckPeer(other) = %v", err)
	}
	if len(changes) != 1 || changes[0].Kind != cert.KindRevocations || changes[0].Revocations.Version != 2 {
		t.Fatalf("changes = %+v, want one, to version 2", changes)
	}
	counts := s.Counts()
	if counts[trust.Accepted] != 1 || counts[trust.Stale] != 1 || counts[trust.Rollback] != 1 {
		t.Fatalf("counts = %v", counts)
	}
}

// Documents not signed by the CA are refused by reason and counted; what
// the store holds is unchanged.
func TestOfferRefusesBogus(t *testing.T) {
	c, other := newCA(t), newCA(t)
	s, err := trust.Open("", c.Pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Offer(cert.KindRevocations, c.Revoke(newPeer(t))); err != nil {
		t.Fatal(err)
	}
	other.Rev = c.Rev // the same versions, so that only the signer differs
	foreign := other.Revoke(newPeer(t))
	forged := c.Revoke(newPeer(t))
	forged = append([]byte(nil), forged...)
	forged[len(forged)-1] ^= 1
	pol := c.Policy(cert.Allow)
	for _, tc := range []struct {
		name string
		kind byte
		doc  []byte
		want trust.Outcome
	}{
		{"another CA", cert.KindRevocations, foreign, trust.UnknownCA},
		{"forged signature", cert.KindRevocations, forged, trust.BadSignature},
		{"garbage", cert.KindRevocations, []byte("ov\x02\x01garbage that is long enough to pass the first length check ....................."), trust.Malformed},
		{"a policy offered as a list", cert.KindRevocations, pol, trust.Malformed},
		{"a certificate kind", cert.KindCertificate, pol, trust.Malformed},
	} {
		before := s.Counts()[tc.want]
		changed, err := s.Offer(tc.kind, tc.doc)
		if changed || err == nil {
			t.Errorf("%s: changed=%v err=%v, want a refusal", tc.name, changed, err)
		}
		if got := s.Counts()[tc.want]; got != before+1 {
			t.Errorf("%s: %s counted %d, want %d (err %v)", tc.name, tc.want, got, before+1, err)
		}
	}
	if v := s.Revocations().Version; v != 1 {
		t.Fatalf("holding version %d after bogus offers, want 1", v)
	}
}

func TestPersistAcrossRestart(t *testing.T) {
	c := newCA(t)
	dir := t.TempDir()
	s, err := trust.Open(dir, c.Pub)
	if err != nil {
		t.Fatal(err)
	}
	revoked := newPeer(t)
	if _, err := s.Offer(cert.KindRevocations, c.Revoke(revoked)); err != nil {
		t.Fatal(err)
	}
	rule := cert.Rule{Name: "quiet", Action: cert.Deny, From: []string{"*"}, To: []string{"*"}, Messages: true}
	if _, err := s.Offer(cert.KindPolicy, c.Policy(cert.Allow, rule)); err != nil {
		t.Fatal(err)
	}
	again, err := trust.Open(dir, c.Pub)
	if err != nil {
		t.Fatal(err)
	}
	if rv, pv := again.Versions(); rv != 1 || pv != 1 {
		t.Fatalf("after restart: versions %d, %d, want 1, 1", rv, pv)
	}
	if err := again.CheckPeer(revoked, nil); !errors.Is(err, cert.ErrRevoked) {
		t.Fatalf("after restart: %v, want revoked", err)
	}
	var d *trust.Denied
	if err := again.Allow(newPeer(t), newPeer(t), cert.Action{Kind: cert.ActionMessage}); !errors.As(err, &d) || d.Rule != "quiet" {
		t.Fatalf("after restart: Allow = %v, want denied by rule quiet", err)
	}
	// Under another CA, the kept documents are set aside, not trusted.
	other := newCA(t)
	s3, err := trust.Open(dir, other.Pub)
	if err != nil {
		t.Fatal(err)
	}
	if rv, pv := s3.Versions(); rv != 0 || pv != 0 {
		t.Fatalf("another CA: versions %d, %d, want none", rv, pv)
	}
	if _, err := os.Stat(filepath.Join(dir, trust.RevocationsFile+".bad")); err != nil {
		t.Fatalf("kept list not moved aside: %v", err)
	}
}

func TestAllowNamesRule(t *testing.T) {
	c := newCA(t)
	s, err := trust.Open("", c.Pub)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newPeer(t), newPeer(t)
	if err := s.Allow(a, b, cert.Action{Kind: cert.ActionMessage}); err != nil {
		t.Fatalf("no policy: %v", err)
	}
	_, err = s.Offer(cert.KindPolicy, c.Policy(cert.Allow,
		cert.Rule{Name: "no-db-from-guests", Action: cert.Deny, From: []string{"group:guests"}, To: []string{"name:db"},
			Messages: true, Services: []string{"postgres"}}))
	if err != nil {
		t.Fatal(err)
	}
	s.SetMemberOf(func(p peer.ID) (cert.Member, bool) {
		switch p {
		case a:
			return cert.Member{Name: "visitor", Groups: []string{"guests"}}, true
		case b:
			return cert.Member{Name: "db"}, true
		}
		return cert.Member{}, false
	})
	err = s.Allow(a, b, cert.Action{Kind: cert.ActionTunnel, Service: "postgres"})
	var d *trust.Denied
	if !errors.As(err, &d) || d.Rule != "no-db-from-guests" || !errors.Is(err, trust.ErrDenied) {
		t.Fatalf("Allow = %v, want denied by no-db-from-guests", err)
	}
	t.Logf("refusal: %v", err)
	if err := s.Allow(a, b, cert.Action{Kind: cert.ActionTunnel, Service: "http"}); err != nil {
		t.Fatalf("http tunnel: %v", err)
	}
	if err := s.Allow(b, a, cert.Action{Kind: cert.ActionMessage}); err != nil {
		t.Fatalf("db to visitor: %v", err)
	}
}

func TestCollector(t *testing.T) {
	c := newCA(t)
	s, err := trust.Open("", c.Pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Offer(cert.KindRevocations, c.Revoke(newPeer(t))); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	for key, want := range map[string]float64{
		"overlay_trust_version/revocations":   1,
		"overlay_trust_version/policy":        0,
		"overlay_trust_revoked_cut_total":     0,
		"overlay_trust_offers_total/accepted": 1,
		"overlay_trust_offers_total/rollback": 0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
}

// Revoking a serial reaches the peer that presented that certificate, once
// the store knows who presented what (SetCertOf); its other certificates
// and other peers stay members.
func TestRevokeBySerial(t *testing.T) {
	c := newCA(t)
	s, err := trust.Open("", c.Pub)
	if err != nil {
		t.Fatal(err)
	}
	id := newPeer(t)
	certFor := func() *cert.Certificate {
		serial, err := cert.NewSerial()
		if err != nil {
			t.Fatal(err)
		}
		crt := &cert.Certificate{Serial: serial, Peer: id, Name: "laptop", NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		if _, err := crt.Sign(c.Priv); err != nil {
			t.Fatal(err)
		}
		return crt
	}
	old, renewed := certFor(), certFor()
	l := c.Rev.Revoke(old.Serial, "")
	doc, err := l.Sign(c.Priv, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Offer(cert.KindRevocations, doc); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckPeer(id, old); !errors.Is(err, cert.ErrRevoked) {
		t.Fatalf("the revoked certificate: %v", err)
	}
	if err := s.CheckPeer(id, renewed); err != nil {
		t.Fatalf("the same peer's renewed certificate: %v", err)
	}
	if err := s.Revoked(id); err != nil {
		t.Fatalf("no certificate known yet: %v, want nil (revocation by serial needs it)", err)
	}
	presented := old
	s.SetCertOf(func(p peer.ID) *cert.Certificate {
		if p == id {
			return presented
		}
		return nil
	})
	if err := s.Revoked(id); !errors.Is(err, cert.ErrRevoked) {
		t.Fatalf("presenting the revoked certificate: %v", err)
	}
	presented = renewed
	if err := s.Revoked(id); err != nil {
		t.Fatalf("presenting the renewed one: %v", err)
	}
}
