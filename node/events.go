package node

import (
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/event"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/node/book"
)

// emitters put the node's events on the host's bus (paths are node/path's).
// The peer book is written in the same step, before the event goes out, so
// that anyone woken by an event (or by a verdict) reads a book that already
// agrees with it.
type emitters struct {
	verdict, autorelay event.Emitter
}

func (e *emitters) open(bus event.Bus) error {
	var err error
	if e.verdict, err = bus.Emitter(new(events.EvtVerdict)); err != nil {
		return fmt.Errorf("verdict emitter: %w", err)
	}
	// Identify pushes our addresses at once on this event, not at its next
	// 5 s tick, so peers learn a new relayed address promptly.
	if e.autorelay, err = bus.Emitter(new(event.EvtAutoRelayAddrsUpdated)); err != nil {
		return fmt.Errorf("relay address emitter: %w", err)
	}
	return nil
}

func (e *emitters) close() {
	for _, em := range []event.Emitter{e.verdict, e.autorelay} {
		if em != nil {
			em.Close()
		}
	}
}

// recordVerdict books a handshake outcome, wakes whoever waits on it and
// emits it.
func (n *Node) recordVerdict(ev events.EvtVerdict, entry func(*book.PeerInfo)) {
	n.book.Update(ev.Peer, entry)
	n.verdicts.Set(ev.Peer, ev.State)
	_ = n.em.verdict.Emit(ev)
}

// watchRelays follows the keeper's relay events: it keeps the table that
// status reads, and when this node's relayed addresses change it tells
// identify. (The DHT publisher follows the same events itself.)
func (n *Node) watchRelays() error {
	return n.follow(new(events.EvtRelay), func(e any) {
		ev := e.(events.EvtRelay)
		prev := n.relays.Put(ev)
		if ev.Gained() || ev.Lost() || !slices.EqualFunc(prev.Addrs, ev.Addrs, ma.Multiaddr.Equal) {
			_ = n.em.autorelay.Emit(event.EvtAutoRelayAddrsUpdated{RelayAddrs: n.RelayedAddrs()})
		}
	})
}

// follow calls fn with every event of type evtType until the node closes.
func (n *Node) follow(evtType any, fn func(any)) error {
	return events.Follow(n.ctx, n.host.EventBus(), evtType, n.goRun, fn)
}
