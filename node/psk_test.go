package node_test

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
)

func newPSK(t *testing.T) pnet.PSK {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func withPSK(k pnet.PSK) nt.Option { return func(c *node.Config) { c.PSK = k } }

// Nodes sharing a pre-shared key connect and message through a relay; a
// node without it, or with another, cannot even finish the transport
// handshake, and is told why.
func TestPrivateNetwork(t *testing.T) {
	psk := newPSK(t)
	r := nt.Relay(t, nt.WithoutDHT(), withPSK(psk))
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a := nt.Peer(t, relays, nt.WithoutDHT(), withPSK(psk))
	b := nt.Peer(t, relays, nt.WithoutDHT(), withPSK(psk))
	nt.Eventually(t, 10*time.Second, "both reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
	ch, cancel := b.Messages().Subscribe(1)
	defer cancel()
	ctx := nt.Context(t, 20*time.Second)
	if _, err := a.Connect(ctx, b.ID().String()); err != nil {
		t.Fatalf("connect within the private network: %v", err)
	}
	if _, err := a.Messages().Send(ctx, b.ID(), []byte("psk")); err != nil {
		t.Fatalf("send within the private network: %v", err)
	}
	if m := <-ch; !bytes.Equal(m.Data, []byte("psk")) {
		t.Fatalf("got %q", m.Data)
	}

	for name, opts := range map[string][]nt.Option{
		"no key":      {nt.WithoutDHT()},
		"another key": {nt.WithoutDHT(), withPSK(newPSK(t))},
	} {
		t.Run(name, func(t *testing.T) {
			o := nt.Relay(t, opts...)
			_, err := o.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, r).String())
			if err == nil {
				t.Fatal("connected to a private network without its key")
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), "pre-shared key") {
				t.Errorf("error %q does not name the pre-shared key", err)
			}
			if r.Host().Network().Connectedness(o.ID()) == 1 {
				t.Error("the relay holds a connection to the outsider")
			}
		})
	}
}

// A private node without the key is told, in its relay standing, why its
// relay is unreachable.
func TestPrivateNetworkRelayUnreachable(t *testing.T) {
	r := nt.Relay(t, nt.WithoutDHT(), withPSK(newPSK(t)))
	p := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r)}, nt.WithoutDHT())
	nt.Eventually(t, 20*time.Second, "relay standing names the pre-shared key", func() bool {
		rs := p.Status().Relays
		return len(rs) == 1 && strings.Contains(rs[0].Reason, "pre-shared key")
	})
	t.Logf("standing: %+v", p.Status().Relays[0])
}

// A private network has no QUIC: a QUIC listen address is an error.
func TestPrivateNetworkRefusesQUIC(t *testing.T) {
	cfg := node.DefaultConfig(protocol.RolePublic)
	cfg.Key, cfg.PSK = nt.Key(t), newPSK(t)
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "cannot use QUIC") {
		t.Fatalf("Validate = %v, want a QUIC error", err)
	}
}
