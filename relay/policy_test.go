package relay_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node/book"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// An overlay relay serves members only: a stock libp2p node, which never
// passes the handshake, gets no reservation.
func TestRelayRefusesNonMembers(t *testing.T) {
	r := nt.Relay(t)
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ai, err := peer.AddrInfoFromP2pAddr(nt.TCPAddr(t, r))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, *ai); err != nil {
		t.Fatal(err)
	}
	_, err = client.Reserve(ctx, h, *ai)
	var re client.ReservationError
	if !errors.As(err, &re) || re.Status != pbv2.Status_PERMISSION_DENIED {
		t.Fatalf("reservation by a non-member: %v, want PERMISSION_DENIED", err)
	}
	p, _ := r.Book().Get(h.ID())
	if p.State != book.StateForeign {
		t.Errorf("relay books the stock node as %q, want foreign", p.State)
	}

	// A member still reserves.
	m := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r)})
	nt.Eventually(t, 10*time.Second, "member reserved", func() bool { return nt.Reserved(m, 1) })
}
