package certs_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/book"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
)

// rawHandshake connects a plain libp2p host to n and runs the handshake
// with hello as it is, as a forged or an older node would: the refusal n
// sends, as that node reads it.
func rawHandshake(t *testing.T, n *node.Node, hello protocol.Hello) (*protocol.RejectedError, peer.ID) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ctx := nt.Context(t, 10*time.Second)
	if err := h.Connect(ctx, peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStream(ctx, n.ID(), protocol.HandshakeID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = protocol.Initiate(s, hello)
	var rej *protocol.RejectedError
	if !errors.As(err, &rej) || !rej.ByPeer {
		t.Fatalf("handshake = %v, want a refusal by the node", err)
	}
	return rej, h.ID()
}

func v3Hello(crt []byte) protocol.Hello {
	return protocol.Hello{Network: node.DefaultNetwork, Version: protocol.Version, Role: protocol.RolePrivate, Agent: "test", Cert: crt}
}

// TestCertificateForged: a certificate presented by another peer ID than
// the one it names, and one that is not a certificate, are refused with
// their codes; the node books why.
func TestCertificateForged(t *testing.T) {
	ca := newCA(t)
	nb, na := valid()
	hm := newMember(t, ca, "host", nb, na)
	host := nt.Relay(t, hm.opts(ca)...)
	victim := newMember(t, ca, "victim", nb, na)

	tampered := victim.cert.Marshal()
	tampered = append([]byte(nil), tampered...)
	tampered[len(tampered)-1] ^= 1 // the signature

	cases := []struct {
		name     string
		crt      []byte
		code     protocol.RejectCode
		reason   string // the node's reason, sent and booked
		explains string // as the refused side words it
	}{
		{"peer ID mismatch", victim.cert.Marshal(), protocol.CodeCertPeerMismatch,
			"certificate peer ID mismatch: certificate \"victim\" is for " + victim.id.String(),
			"the peer says this node's certificate was issued for another peer ID"},
		{"bad signature", tampered, protocol.CodeCertBadSignature, "bad CA signature",
			"the peer found this node's certificate not signed by its CA"},
		{"malformed", []byte("ov not a certificate"), protocol.CodeCertMalformed, "peer's certificate refused: malformed",
			"the peer could not read this node's certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			self := v3Hello(tc.crt)
			rej, id := rawHandshake(t, host, self)
			if rej.Refusal.Code != tc.code || !strings.Contains(rej.Refusal.Reason, tc.reason) {
				t.Fatalf("refusal %+v\nwant code %s saying %q", rej.Refusal, tc.code, tc.reason)
			}
			if e := rej.Refusal.Explain("the peer", self); !strings.Contains(e, tc.explains) {
				t.Errorf("refused side reads %q\nwant %q", e, tc.explains)
			}
			nt.Eventually(t, 10*time.Second, "the node books the refusal", func() bool {
				b, _ := host.Book().Get(id)
				return b.State == book.StateRejected && strings.Contains(b.Reason, tc.reason)
			})
		})
	}

	// Once the victim has connected, its certificate's signature is
	// cached: the binding is still checked on every handshake.
	v := nt.Relay(t, victim.opts(ca)...)
	if _, err := v.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, host).String()); err != nil {
		t.Fatal(err)
	}
	rej, _ := rawHandshake(t, host, v3Hello(victim.cert.Marshal()))
	if rej.Refusal.Code != protocol.CodeCertPeerMismatch {
		t.Fatalf("copied certificate after its owner connected: %+v", rej.Refusal)
	}
}

// TestCertificateVersion2: a version 2 node reaching a certificate-mode
// node is refused with a reason it can read as text: version 2 knows no
// certificate code, so it shows the reason as the peer sent it.
func TestCertificateVersion2(t *testing.T) {
	ca := newCA(t)
	nb, na := valid()
	hm := newMember(t, ca, "host", nb, na)
	host := nt.Relay(t, hm.opts(ca)...)
	old := v3Hello(nil)
	old.Version = 2
	rej, _ := rawHandshake(t, host, old)
	if rej.Refusal.Code != protocol.CodeCertRequired {
		t.Fatalf("refusal %+v, want %s", rej.Refusal, protocol.CodeCertRequired)
	}
	// What a version 2 node shows: "the peer said: REASON" (CodeOther).
	asText := (&protocol.Refusal{Code: protocol.CodeOther, Reason: rej.Refusal.Reason}).Explain("the peer", old)
	for _, w := range []string{"certificate required", "certificate mode", "version 2 cannot carry one", "upgrade"} {
		if !strings.Contains(asText, w) {
			t.Errorf("a version 2 node reads %q: no %q", asText, w)
		}
	}
	// And a real node posing as version 2, without a certificate.
	v2 := nt.Relay(t, nt.WithVersion(2))
	_, err := v2.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, host).String())
	if !errors.Is(err, node.ErrRejected) || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("version 2 node: Connect = %v", err)
	}
}
