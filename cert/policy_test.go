package cert_test

import (
	"errors"
	"testing"

	"github.com/overlay-net/overlay/cert"
)

func TestPolicyAllows(t *testing.T) {
	pub, priv := newCA(t)
	boss := newPeer(t)
	p := &cert.Policy{Version: 1, Default: cert.Allow, Rules: []cert.Rule{
		{Name: "boss-anything", Action: cert.Allow, From: []string{"peer:" + boss.String()}, To: []string{"*"},
			Messages: true, Services: []string{"*"}, Ports: []string{"*"}},
		{Name: "no-guests-to-servers", Action: cert.Deny, From: []string{"group:guests"}, To: []string{"group:servers"},
			Messages: true, Services: []string{"*"}, Ports: []string{"*"}},
		{Name: "ssh-to-db", Action: cert.Allow, From: []string{"group:dev"}, To: []string{"name:db"},
			Services: []string{"ssh"}, Ports: []string{"tcp/22", "udp/60000-61000", "icmp"}},
		{Name: "db-closed", Action: cert.Deny, From: []string{"*"}, To: []string{"name:db"},
			Services: []string{"*"}, Ports: []string{"*"}},
	}}
	b, err := p.Sign(priv, t0)
	if err != nil {
		t.Fatal(err)
	}
	p, err = cert.ParsePolicy(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(pub); err != nil {
		t.Fatal(err)
	}
	dev := cert.Member{Peer: newPeer(t), Name: "dev1", Groups: []string{"dev"}}
	guest := cert.Member{Peer: newPeer(t), Name: "visitor", Groups: []string{"guests"}}
	db := cert.Member{Peer: newPeer(t), Name: "db", Groups: []string{"servers"}}
	web := cert.Member{Peer: newPeer(t), Name: "web", Groups: []string{"servers"}}
	bossM := cert.Member{Peer: boss, Name: "boss"}
	msg := cert.Action{Kind: cert.ActionMessage}
	ssh := cert.Action{Kind: cert.ActionTunnel, Service: "ssh"}
	pg := cert.Action{Kind: cert.ActionTunnel, Service: "postgres"}
	tcp := func(port uint16) cert.Action { return cert.Action{Kind: cert.ActionIP, Proto: "tcp", Port: port} }
	for _, tc := range []struct {
		name     string
		from, to cert.Member
		a        cert.Action
		allowed  bool
		rule     string
	}{
		{"default allows", dev, web, msg, true, cert.DecisionByDefault},
		{"guest message to a server", guest, web, msg, false, "no-guests-to-servers"},
		{"guest to a non-server", guest, dev, msg, true, cert.DecisionByDefault},
		{"dev ssh tunnel to db", dev, db, ssh, true, "ssh-to-db"},
		{"dev postgres tunnel to db", dev, db, pg, false, "db-closed"},
		{"dev tcp/22 to db", dev, db, tcp(22), true, "ssh-to-db"},
		{"dev tcp/5432 to db", dev, db, tcp(5432), false, "db-closed"},
		{"dev udp in range", dev, db, cert.Action{Kind: cert.ActionIP, Proto: "udp", Port: 60500}, true, "ssh-to-db"},
		{"dev udp out of range", dev, db, cert.Action{Kind: cert.ActionIP, Proto: "udp", Port: 61001}, false, "db-closed"},
		{"dev icmp", dev, db, cert.Action{Kind: cert.ActionIP, Proto: "icmp"}, true, "ssh-to-db"},
		{"dev message to db: no rule covers messages to db", dev, db, msg, true, cert.DecisionByDefault},
		{"boss first match", bossM, db, pg, true, "boss-anything"},
		{"guest to db: deny before allow", guest, db, ssh, false, "no-guests-to-servers"},
	} {
		d := p.Allows(tc.from, tc.to, tc.a)
		if d.Allowed != tc.allowed || d.Rule != tc.rule {
			t.Errorf("%s: %+v, want allowed %v by %q", tc.name, d, tc.allowed, tc.rule)
		}
	}
	var none *cert.Policy
	if d := none.Allows(guest, db, pg); !d.Allowed || d.Rule != cert.DecisionNoPolicy {
		t.Fatalf("no policy: %+v", d)
	}
	closed := &cert.Policy{Version: 2, Default: cert.Deny}
	if _, err := closed.Sign(priv, t0); err != nil {
		t.Fatal(err)
	}
	if d := closed.Allows(dev, web, msg); d.Allowed || d.Rule != cert.DecisionByDefault {
		t.Fatalf("default deny: %+v", d)
	}
	if !closed.Newer(p) || p.Newer(closed) || p.Newer(p) || !p.Newer(nil) {
		t.Fatal("Newer: a rollback or a replay taken for news")
	}
	tamper(t, b, func(b []byte) error {
		p, err := cert.ParsePolicy(b)
		if err != nil {
			return err
		}
		return p.Verify(pub)
	})
	otherPub, _ := newCA(t)
	if err := p.Verify(otherPub); !errors.Is(err, cert.ErrUnknownCA) {
		t.Fatalf("verify against another CA: %v", err)
	}
}

func TestPolicyRefusesBadRules(t *testing.T) {
	_, priv := newCA(t)
	id := newPeer(t)
	ok := cert.Rule{Name: "r", Action: cert.Allow, From: []string{"*"}, To: []string{"*"}, Messages: true}
	for name, mod := range map[string]func(*cert.Policy){
		"no default":       func(p *cert.Policy) { p.Default = "" },
		"version 0":        func(p *cert.Policy) { p.Version = 0 },
		"bad action":       func(p *cert.Policy) { p.Rules[0].Action = "maybe" },
		"no from":          func(p *cert.Policy) { p.Rules[0].From = nil },
		"bad selector":     func(p *cert.Policy) { p.Rules[0].To = []string{"team:x"} },
		"bad group":        func(p *cert.Policy) { p.Rules[0].To = []string{"group:A"} },
		"bad peer":         func(p *cert.Policy) { p.Rules[0].To = []string{"peer:xyz"} },
		"non-canonical id": func(p *cert.Policy) { p.Rules[0].To = []string{"peer: " + id.String()} },
		"covers nothing":   func(p *cert.Policy) { p.Rules[0].Messages = false },
		"bad port":         func(p *cert.Policy) { p.Rules[0].Ports = []string{"tcp/70000"} },
		"reversed range":   func(p *cert.Policy) { p.Rules[0].Ports = []string{"tcp/9-1"} },
		"icmp port":        func(p *cert.Policy) { p.Rules[0].Ports = []string{"icmp/8"} },
		"bad proto":        func(p *cert.Policy) { p.Rules[0].Ports = []string{"sctp/1"} },
		"bad service":      func(p *cert.Policy) { p.Rules[0].Services = []string{"a b"} },
		"bad rule name":    func(p *cert.Policy) { p.Rules[0].Name = "" },
	} {
		p := &cert.Policy{Version: 1, Default: cert.Allow, Rules: []cert.Rule{ok}}
		mod(p)
		if _, err := p.Sign(priv, t0); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}
