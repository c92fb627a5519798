package certs_test

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/certs"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

type testCA struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	pub, priv, err := cert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{pub, priv}
}

// issue signs a certificate for id valid from nb to na.
func (ca *testCA) issue(t testing.TB, id peer.ID, name string, nb, na time.Time, groups ...string) *cert.Certificate {
	t.Helper()
	s, err := cert.NewSerial()
	if err != nil {
		t.Fatal(err)
	}
	c := &cert.Certificate{Serial: s, Peer: id, Name: name, Groups: groups, NotBefore: nb, NotAfter: na}
	if _, err := c.Sign(ca.priv); err != nil {
		t.Fatal(err)
	}
	return c
}

// write puts c in file as PEM, replacing it atomically, as a renewal does.
func write(t testing.TB, file string, c *cert.Certificate) {
	t.Helper()
	b, err := cert.EncodePEM(c.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// clock is a node's clock that a test moves forward.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time           { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) jump(d time.Duration)     { c.off.Add(int64(d)) }
func (c *clock) opt() func(*certs.Config) { return func(cc *certs.Config) { cc.Now = c.now } }

// member is a node of ca's network named name, its certificate valid from
// nb to na.
type member struct {
	key  crypto.PrivKey
	id   peer.ID
	file string
	cert *cert.Certificate
}

func newMember(t testing.TB, ca *testCA, name string, nb, na time.Time, groups ...string) *member {
	t.Helper()
	k := nt.Key(t)
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	m := &member{key: k, id: id, file: filepath.Join(t.TempDir(), "node.cert")}
	m.cert = ca.issue(t, id, name, nb, na, groups...)
	write(t, m.file, m.cert)
	return m
}

// opts are the node options of m's certificate mode, tuned for tests
// (fast reloads and sweeps), each fn applied after.
func (m *member) opts(ca *testCA, fns ...func(*certs.Config)) []nt.Option {
	return []nt.Option{nt.WithKey(m.key), func(c *node.Config) {
		c.Certs = certs.Config{CA: ca.pub, CertFile: m.file, ReloadEvery: 20 * time.Millisecond, SweepEvery: 50 * time.Millisecond}
		for _, fn := range fns {
			fn(&c.Certs)
		}
	}}
}

// valid is a window around now.
func valid() (time.Time, time.Time) {
	return time.Now().Add(-time.Hour), time.Now().Add(30 * 24 * time.Hour)
}
