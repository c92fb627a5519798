package cert_test

import (
	"testing"

	"github.com/overlay-net/overlay/cert"
)

// Relay actions are decided by the rules that cover them, and allowed when
// none does, even under a deny default.
func TestPolicyRelayActions(t *testing.T) {
	pub, priv := newCA(t)
	p := &cert.Policy{Version: 1, Default: cert.Deny, Rules: []cert.Rule{
		{Name: "guests-no-reserve", Action: cert.Deny, From: []string{"group:guests"}, To: []string{"*"},
			Relay: []string{cert.RelayReserve}},
		{Name: "no-circuits-to-db", Action: cert.Deny, From: []string{"*"}, To: []string{"name:db"},
			Relay: []string{"*"}},
	}}
	b, err := p.Sign(priv, t0)
	if err != nil {
		t.Fatal(err)
	}
	if p, err = cert.ParsePolicy(b); err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(pub); err != nil {
		t.Fatal(err)
	}
	guest := cert.Member{Peer: newPeer(t), Name: "visitor", Groups: []string{"guests"}}
	dev := cert.Member{Peer: newPeer(t), Name: "dev1", Groups: []string{"dev"}}
	db := cert.Member{Peer: newPeer(t), Name: "db"}
	relay := cert.Member{Peer: newPeer(t)}
	reserve := cert.Action{Kind: cert.ActionReserve}
	circuit := cert.Action{Kind: cert.ActionCircuit}
	for _, tc := range []struct {
		name     string
		from, to cert.Member
		a        cert.Action
		allowed  bool
		rule     string
	}{
		{"guest reserves", guest, relay, reserve, false, "guests-no-reserve"},
		{"dev reserves: no rule, allowed despite deny default", dev, relay, reserve, true, cert.DecisionNoRelayRule},
		{"guest circuit to dev", guest, dev, circuit, true, cert.DecisionNoRelayRule},
		{"dev circuit to db", dev, db, circuit, false, "no-circuits-to-db"},
		{"messages keep the deny default", dev, db, cert.Action{Kind: cert.ActionMessage}, false, cert.DecisionByDefault},
	} {
		d := p.Allows(tc.from, tc.to, tc.a)
		if d.Allowed != tc.allowed || d.Rule != tc.rule {
			t.Errorf("%s: got %+v, want allowed=%v rule=%q", tc.name, d, tc.allowed, tc.rule)
		}
	}
	bad := &cert.Policy{Version: 1, Default: cert.Allow, Rules: []cert.Rule{
		{Name: "typo", Action: cert.Deny, From: []string{"*"}, To: []string{"*"}, Relay: []string{"reserv"}}}}
	if _, err := bad.Sign(priv, t0); err == nil {
		t.Fatal("a relay action typo was signed")
	}
}
