package relay

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	circuitproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

// An open relay serves two tiers. go-libp2p's relay applies one set of
// limits to every circuit, so each tier is its own circuit.Relay: members
// with the relay's limits (uncut circuits by default), strangers with
// stock ones. Each instance is built on a hopHost that keeps the hop
// protocol's handler instead of registering it; one dispatcher registered
// on the real host hands each hop stream to the requester's tier.
//
// Reservations live in the instance that granted them, and a CONNECT is
// served by the source's instance, which knows only its own reservations:
// a stranger cannot open a circuit to a member (NO_RESERVATION), nor a
// member to a stranger. Members refuse strangers in the overlay handshake
// anyway, so no circuit between the tiers would carry anything.

// strangerResources sets rs to what an open relay gives non-members: stock
// go-libp2p relay limits (2 min and 128 KiB per circuit, 16 circuits per
// peer, 8 reservations per IP), and an eighth of the reservations, which
// it returns.
func strangerResources(cfg Config, rs *circuit.Resources) int {
	rs.MaxReservations = max(1, cfg.MaxReservations/8)
	rs.ReservationTTL = cfg.ReservationTTL
	return rs.MaxReservations
}

// hopHost is a host whose hop-protocol handler is kept, not registered.
type hopHost struct {
	host.Host
	mu sync.Mutex
	h  network.StreamHandler
}

func (w *hopHost) SetStreamHandler(pid protocol.ID, h network.StreamHandler) {
	if pid != circuitproto.ProtoIDv2Hop {
		w.Host.SetStreamHandler(pid, h)
		return
	}
	w.mu.Lock()
	w.h = h
	w.mu.Unlock()
}

func (w *hopHost) RemoveStreamHandler(pid protocol.ID) {
	if pid != circuitproto.ProtoIDv2Hop {
		w.Host.RemoveStreamHandler(pid)
		return
	}
	w.mu.Lock()
	w.h = nil
	w.mu.Unlock()
}

func (w *hopHost) handle(s network.Stream) {
	w.mu.Lock()
	h := w.h
	w.mu.Unlock()
	if h == nil {
		s.Reset()
		return
	}
	h(s)
}

// dispatcher hands each hop stream to the tier of the peer that opened it.
type dispatcher struct {
	h                  host.Host
	m                  Members
	members, strangers *hopHost
}

func newDispatcher(h host.Host, m Members) *dispatcher {
	return &dispatcher{h: h, m: m, members: &hopHost{Host: h}, strangers: &hopHost{Host: h}}
}

func (d *dispatcher) register() { d.h.SetStreamHandler(circuitproto.ProtoIDv2Hop, d.handle) }

// handle waits for the requester's handshake verdict (a stock peer's comes
// within seconds of identify), then serves the request in its tier.
func (d *dispatcher) handle(s network.Stream) {
	ctx, cancel := context.WithTimeout(context.Background(), aclWait)
	member := d.m.IsMember(ctx, s.Conn().RemotePeer())
	cancel()
	if member {
		d.members.handle(s)
		return
	}
	d.strangers.handle(s)
}
