// Package trusttest is a test CA for node/trust's documents, shared by the
// tests of node/trust and of node.
package trusttest

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
)

// CA signs successive revocation lists and policies for a test.
type CA struct {
	t    testing.TB
	Pub  ed25519.PublicKey
	Priv ed25519.PrivateKey
	Rev  *cert.RevocationList // the last list Revoke signed, nil before
	Pol  uint64               // the last policy's version
}

// New returns a CA with a fresh key; it fails t if none can be made.
func New(t testing.TB) *CA {
	t.Helper()
	pub, priv, err := cert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	return &CA{t: t, Pub: pub, Priv: priv}
}

// Revoke signs the next list, adding id.
func (c *CA) Revoke(id peer.ID) []byte {
	c.t.Helper()
	l := c.Rev.Revoke(cert.Serial{}, id)
	b, err := l.Sign(c.Priv, time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	c.Rev = l
	return b
}

// Policy signs the next policy with rules.
func (c *CA) Policy(def string, rules ...cert.Rule) []byte {
	c.t.Helper()
	c.Pol++
	p := &cert.Policy{Version: c.Pol, Default: def, Rules: rules}
	b, err := p.Sign(c.Priv, time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}
