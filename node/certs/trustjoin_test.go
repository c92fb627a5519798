package certs_test

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node/certs"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// TestPublishedRevocationInCertificateMode joins the two halves of issue
// 24 in one node: a revocation list published through the trust store
// (Node.Publish, as 'overlay ca publish' does) revokes a member by the
// serial of the certificate it presented. The node disconnects it at once
// (the expiry sweep is an hour away here) and refuses its next handshake
// with cert-revoked.
func TestPublishedRevocationInCertificateMode(t *testing.T) {
	ca := newCA(t)
	nb, na := valid()
	hourly := func(c *certs.Config) { c.SweepEvery = time.Hour }
	hm := newMember(t, ca, "server", nb, na)
	lm := newMember(t, ca, "laptop", nb, na)
	server := nt.Relay(t, hm.opts(ca, hourly)...)
	laptop := nt.Relay(t, lm.opts(ca, hourly)...)
	ctx := nt.Context(t, 20*time.Second)
	if _, err := laptop.Connect(ctx, nt.TCPAddr(t, server).String()); err != nil {
		t.Fatal(err)
	}
	if server.Trust() == nil {
		t.Fatal("certificate mode opened no trust store")
	}
	doc, err := (*cert.RevocationList)(nil).Revoke(lm.cert.Serial, "").Sign(ca.priv, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := server.Trust().Offer(cert.KindRevocations, doc); err != nil || !changed {
		t.Fatalf("publish: changed %v, %v", changed, err)
	}
	nt.Eventually(t, 5*time.Second, "the server drops the revoked laptop", func() bool {
		return server.Host().Network().Connectedness(laptop.ID()) != network.Connected
	})
	if _, err := laptop.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, server).String()); err == nil {
		t.Fatal("the revoked laptop connected again")
	}
	nt.Eventually(t, 10*time.Second, "the server counts a cert-revoked refusal", func() bool {
		for k, n := range server.Certs().Refusals() {
			if k.Code == "cert-revoked" && k.RefusedBy == "self" && n > 0 {
				return true
			}
		}
		return false
	})
}
