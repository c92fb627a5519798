package handshake_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node/certs"
	"github.com/overlay-net/overlay/node/handshake"
	"github.com/overlay-net/overlay/node/verdict"
	"github.com/overlay-net/overlay/protocol"
)

// side is one end of the benchmark: a libp2p host on loopback TCP and its
// handshake runner, in certificate mode or not.
type side struct {
	h        host.Host
	r        *handshake.Runner
	admitted chan *cert.Certificate
}

func newSide(b *testing.B, ca ed25519Key, mode string) *side {
	b.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		b.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(k), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	s := &side{h: h, admitted: make(chan *cert.Certificate, 1)}
	cfg := handshake.Config{Network: "bench", Version: protocol.Version, Self: h.ID(), Verdicts: verdict.New(),
		Local: func() protocol.Hello {
			return protocol.Hello{Network: "bench", Version: protocol.Version, Role: protocol.RolePublic, Agent: "bench",
				Direct: h.Addrs()}
		},
		Noun:  func(peer.ID) string { return "the peer" },
		Admit: func(_ network.Conn, _ protocol.Hello, c *cert.Certificate) { s.admitted <- c },
		Reject: func(_ network.Conn, r string, _ bool, _ protocol.Hello) {
			b.Error("refused: " + r)
		},
		Foreign: func(network.Conn, string) {},
	}
	if mode != "plain" {
		serial, _ := cert.NewSerial()
		c := &cert.Certificate{Serial: serial, Peer: h.ID(), Name: "bench", Groups: []string{"a", "b"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		if _, err := c.Sign(ca.priv); err != nil {
			b.Fatal(err)
		}
		pemDoc, _ := cert.EncodePEM(c.Marshal())
		file := filepath.Join(b.TempDir(), "cert")
		if err := os.WriteFile(file, pemDoc, 0o600); err != nil {
			b.Fatal(err)
		}
		cc := certs.Config{CA: ca.pub, CertFile: file, Self: h.ID()}
		if mode == "certificate-uncached" {
			cc.VerifyCache = -1 // every handshake a first contact
		}
		m, err := certs.New(cc)
		if err != nil {
			b.Fatal(err)
		}
		cfg.Certs = m
	}
	s.r = handshake.New(cfg)
	h.SetStreamHandler(protocol.HandshakeID, s.r.Respond)
	return s
}

type ed25519Key struct {
	pub  []byte
	priv []byte
}

// BenchmarkHandshake runs the overlay handshake, initiator to responder,
// over one libp2p TCP connection on loopback (a new stream each time), in
// today's mode and in certificate mode, and reports its percentiles: the
// cost certificate mode adds to each connection's handshake (hello size,
// parsing, two CA signature checks on the critical path). "certificate"
// repeats one pair of certificates, as members that reconnect do, so each
// signature is checked once (the verify cache); "certificate-uncached"
// checks both every time, as at a first contact.
//
//	go test -run '^$' -bench Handshake -benchtime 3000x -count 5 ./node/handshake/
func BenchmarkHandshake(b *testing.B) {
	pub, priv, err := cert.NewCA()
	if err != nil {
		b.Fatal(err)
	}
	ca := ed25519Key{pub, priv}
	for _, mode := range []string{"plain", "certificate", "certificate-uncached"} {
		b.Run(mode, func(b *testing.B) {
			ini, resp := newSide(b, ca, mode), newSide(b, ca, mode)
			ctx := context.Background()
			if err := ini.h.Connect(ctx, peer.AddrInfo{ID: resp.h.ID(), Addrs: resp.h.Addrs()}); err != nil {
				b.Fatal(err)
			}
			c := ini.h.Network().ConnsToPeer(resp.h.ID())[0]
			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				ini.r.Initiate(ctx, c)
				<-ini.admitted
				took = append(took, time.Since(start))
				<-resp.admitted
			}
			b.StopTimer()
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
		})
	}
}
