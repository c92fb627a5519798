package cert_test

import (
	"strings"
	"testing"

	"github.com/overlay-net/overlay/cert"
)

// Topic rules: publish and follow per topic name or "*"; with no rule
// covering a topic action it is allowed, whatever the default.
func TestPolicyTopics(t *testing.T) {
	_, priv := newCA(t)
	p := &cert.Policy{Version: 1, Default: cert.Deny, Rules: []cert.Rule{
		{Name: "ops-publish-fleet", Action: cert.Allow, From: []string{"group:ops"}, To: []string{"*"}, Publish: []string{"fleet"}},
		{Name: "fleet-closed", Action: cert.Deny, From: []string{"*"}, To: []string{"*"}, Publish: []string{"fleet"}},
		{Name: "follow-fleet", Action: cert.Allow, From: []string{"group:ops", "group:relays"}, To: []string{"*"}, Follow: []string{"fleet"}},
		{Name: "no-follow", Action: cert.Deny, From: []string{"*"}, To: []string{"*"}, Follow: []string{"fleet", "secret"}},
	}}
	b, err := p.Sign(priv, t0)
	if err != nil {
		t.Fatal(err)
	}
	if p, err = cert.ParsePolicy(b); err != nil {
		t.Fatal(err)
	}
	ops := cert.Member{Peer: newPeer(t), Groups: []string{"ops"}}
	guest := cert.Member{Peer: newPeer(t), Groups: []string{"guests"}}
	relay := cert.Member{Peer: newPeer(t), Groups: []string{"relays"}}
	pub := func(topic string) cert.Action { return cert.Action{Kind: cert.ActionPublish, Topic: topic} }
	fol := func(topic string) cert.Action { return cert.Action{Kind: cert.ActionFollow, Topic: topic} }
	for _, tc := range []struct {
		name    string
		from    cert.Member
		a       cert.Action
		allowed bool
		rule    string
	}{
		{"ops publishes fleet", ops, pub("fleet"), true, "ops-publish-fleet"},
		{"guest publishes fleet", guest, pub("fleet"), false, "fleet-closed"},
		{"guest publishes chat: no rule, default deny does not apply", guest, pub("chat"), true, cert.DecisionNoTopicRule},
		{"relay follows fleet", relay, fol("fleet"), true, "follow-fleet"},
		{"guest follows fleet", guest, fol("fleet"), false, "no-follow"},
		{"ops follows secret", ops, fol("secret"), false, "no-follow"},
		{"guest follows chat", guest, fol("chat"), true, cert.DecisionNoTopicRule},
		{"messages keep the default", guest, cert.Action{Kind: cert.ActionMessage}, false, cert.DecisionByDefault},
	} {
		d := p.Allows(tc.from, ops, tc.a)
		if d.Allowed != tc.allowed || d.Rule != tc.rule {
			t.Errorf("%s: %+v, want allowed %v by %q", tc.name, d, tc.allowed, tc.rule)
		}
	}
}

func TestPolicyTopicRuleChecked(t *testing.T) {
	_, priv := newCA(t)
	for _, tc := range []struct {
		r    cert.Rule
		want string
	}{
		{cert.Rule{Name: "empty", Action: cert.Allow, From: []string{"*"}, To: []string{"*"}, Publish: []string{""}}, "topic of 0 bytes"},
		{cert.Rule{Name: "ctl", Action: cert.Allow, From: []string{"*"}, To: []string{"*"}, Follow: []string{"a\nb"}}, "control character"},
		{cert.Rule{Name: "long", Action: cert.Allow, From: []string{"*"}, To: []string{"*"}, Publish: []string{strings.Repeat("x", cert.MaxTopicName+1)}}, "topic of 257 bytes"},
	} {
		p := &cert.Policy{Version: 1, Default: cert.Allow, Rules: []cert.Rule{tc.r}}
		if _, err := p.Sign(priv, t0); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.r.Name, err, tc.want)
		}
	}
}
