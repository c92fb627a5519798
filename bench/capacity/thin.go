package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/host/basic"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/websocket"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/protocol"
)

// thinPeer is a load peer that does, on the wire, what a WebSocket-only
// private node does to hold a reservation (WebSocket, TLS, yamux, identify,
// the overlay handshake, reserve and renew at half the TTL, reconnect when
// the connection drops) and nothing else. Built without libp2p.New's
// dependency injection, it costs the load process a small fraction of a
// full node: with full nodes the load generator, not the relay, set the
// ramp's pace (bench/capacity was 5x the relay's CPU). Message pairs stay
// full nodes, since they need the messenger.
type thinPeer struct {
	h      *basichost.BasicHost
	relay  peer.AddrInfo
	hello  protocol.Hello
	emit   func(events.EvtRelay)
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// drop is signalled when a connection to the relay closes: the
	// reservation goes with it (the relay deletes it).
	drop chan struct{}

	mu    sync.Mutex
	state events.RelayState
}

func startThin(key crypto.PrivKey, relay peer.AddrInfo, netName string, emit func(events.EvtRelay)) (*thinPeer, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	ps, err := pstoremem.NewPeerstore()
	if err != nil {
		return nil, err
	}
	if err := ps.AddPrivKey(id, key); err != nil {
		return nil, err
	}
	if err := ps.AddPubKey(id, key.GetPublic()); err != nil {
		return nil, err
	}
	bus := eventbus.NewBus()
	sw, err := swarm.NewSwarm(id, ps, bus)
	if err != nil {
		return nil, fmt.Errorf("swarm: %w", err)
	}
	muxers := []tptu.StreamMuxer{{ID: yamux.ID, Muxer: yamux.DefaultTransport}}
	tlsT, err := libp2ptls.New(libp2ptls.ID, key, muxers)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	up, err := tptu.New([]sec.SecureTransport{tlsT}, muxers, nil, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("upgrader: %w", err)
	}
	ws, err := websocket.New(up, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	if err := sw.AddTransport(ws); err != nil {
		return nil, err
	}
	h, err := basichost.NewHost(sw, &basichost.HostOpts{EventBus: bus, UserAgent: "overlay-bench-thin"})
	if err != nil {
		sw.Close()
		return nil, fmt.Errorf("host: %w", err)
	}
	h.Start()
	ctx, cancel := context.WithCancel(context.Background())
	t := &thinPeer{h: h, relay: relay, emit: emit, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		state: events.RelayConnecting, drop: make(chan struct{}, 1),
		hello: protocol.Hello{Network: netName, Version: protocol.Version, Role: protocol.RolePrivate, Agent: "overlay-bench-thin"}}
	// A private node answers the handshake too; the relay reads identify's
	// protocol list, and a peer that lists none is taken for a stock node
	// if its own handshake is slow to start (a loaded load process).
	h.SetStreamHandler(protocol.HandshakeID, func(s network.Stream) {
		_ = s.SetDeadline(time.Now().Add(protocol.HandshakeTimeout))
		if _, err := protocol.Respond(s, t.hello); err != nil {
			s.Reset()
			return
		}
		s.Close()
	})
	h.Network().Notify(&network.NotifyBundle{DisconnectedF: func(_ network.Network, c network.Conn) {
		if c.RemotePeer() == relay.ID {
			select {
			case t.drop <- struct{}{}:
			default:
			}
		}
	}})
	go t.run()
	return t, nil
}

// reserved reports whether the peer holds its reservation now.
func (t *thinPeer) reserved() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state == events.RelayReserved
}

func (t *thinPeer) set(state events.RelayState, reason string, expires time.Time) {
	t.mu.Lock()
	prev := t.state
	t.state = state
	t.mu.Unlock()
	t.emit(events.EvtRelay{Relay: t.relay.ID, State: state, Prev: prev, Reason: reason, Expires: expires})
}

// run holds the reservation: join, renew at half its life, and join again
// after any failure.
func (t *thinPeer) run() {
	defer close(t.done)
	// Failed joins back off, doubling from 1 s to 16 s with jitter, as the
	// keeper's first join does: at a 10,000-peer ramp a flat retry turned
	// the relay's refusals of connections in their handshake into a storm.
	backoff := time.Second
	for t.ctx.Err() == nil {
		exp, err := t.join()
		if err == nil {
			backoff = time.Second
		}
		for err == nil {
			select {
			case <-t.ctx.Done():
				return
			case <-t.drop:
				err = errors.New("connection to relay closed")
				continue
			case <-time.After(time.Until(exp) / 2):
			}
			exp, err = t.reserve()
		}
		if t.ctx.Err() != nil {
			return
		}
		t.set(events.RelayUnreachable, err.Error(), time.Time{})
		select {
		case <-t.ctx.Done():
			return
		case <-time.After(backoff/2 + rand.N(backoff)):
		}
		backoff = min(2*backoff, 16*time.Second)
	}
}

func (t *thinPeer) join() (time.Time, error) {
	ctx, cancel := context.WithTimeout(t.ctx, 30*time.Second)
	defer cancel()
	for len(t.drop) > 0 { // a drop from before this join
		<-t.drop
	}
	if err := t.h.Connect(ctx, t.relay); err != nil {
		return time.Time{}, fmt.Errorf("connect: %w", err)
	}
	s, err := t.h.NewStream(ctx, t.relay.ID, protocol.HandshakeID)
	if err != nil {
		return time.Time{}, fmt.Errorf("handshake stream: %w", err)
	}
	_ = s.SetDeadline(time.Now().Add(protocol.HandshakeTimeout))
	if _, err := protocol.Initiate(s, t.hello); err != nil {
		s.Reset()
		return time.Time{}, fmt.Errorf("handshake: %w", err)
	}
	s.Close()
	return t.reserve()
}

func (t *thinPeer) reserve() (time.Time, error) {
	ctx, cancel := context.WithTimeout(t.ctx, 30*time.Second)
	defer cancel()
	r, err := client.Reserve(ctx, t.h, t.relay)
	if err != nil {
		return time.Time{}, fmt.Errorf("reserve: %w", err)
	}
	t.set(events.RelayReserved, "", r.Expiration)
	return r.Expiration, nil
}

// close stops the peer and its host.
func (t *thinPeer) close() {
	t.cancel()
	<-t.done
	t.h.Close()
}
