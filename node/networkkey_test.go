package node_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/book"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// With a network key, the network name alone no longer admits a peer.
func TestNetworkKey(t *testing.T) {
	const key = "correct horse battery staple"
	cases := []struct {
		name         string
		dialer, host []nt.Option
		want         string // "" admitted, else text of the refusal
	}{
		{"same key", []nt.Option{nt.WithNetworkKey(key)}, []nt.Option{nt.WithNetworkKey(key)}, ""},
		// The dialed host refuses: the dialer words it for itself.
		{"other key", []nt.Option{nt.WithNetworkKey("another key entirely")}, []nt.Option{nt.WithNetworkKey(key)},
			"refused this node: this node holds another network key than the peer"},
		{"dialer has no key", nil, []nt.Option{nt.WithNetworkKey(key)},
			"refused this node: the peer's network requires a network key, this node has none"},
		// The dialer refuses, as it told the host.
		{"host has no key", []nt.Option{nt.WithNetworkKey(key)}, nil, "this node refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			host := nt.Relay(t, tc.host...)
			dialer := nt.Relay(t, tc.dialer...)
			_, err := dialer.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, host).String())
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, node.ErrRejected) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Connect = %v, want a refusal saying %q", err, tc.want)
			}
			nt.Eventually(t, 10*time.Second, "both book the other as rejected", func() bool {
				a, _ := dialer.Book().Get(host.ID())
				b, _ := host.Book().Get(dialer.ID())
				return a.State == book.StateRejected && b.State == book.StateRejected
			})
			if tc.name == "host has no key" {
				// The refused host words it from its side.
				b, _ := host.Book().Get(dialer.ID())
				if want := "the peer's network requires a network key, this node has none"; b.Reason != want || b.RefusedBy != book.RefusedByPeer {
					t.Errorf("host books the refusal as %q by %q, want %q by peer", b.Reason, b.RefusedBy, want)
				}
			}
		})
	}
}
