package main

// Members: in-process overlay nodes reserved on the relay under attack,
// messaging each other through it, and the new member that must still get
// in while an attack is in force.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/messaging"
	"github.com/overlay-net/overlay/protocol"
)

// networkName is the overlay network name the relay and members share.
const networkName = "bench"

// Phases of a run, for labelling round-trip times.
const (
	phaseWarmup int32 = iota
	phaseBefore
	phaseDuring
	phaseAfter
)

// startMember starts a private member reached through the relay only
// (no listen address) and waits until it holds a reservation on the relay
// at relayAddr; tcp says whether it may use TCP (and QUIC) or only
// WebSocket, as behind a proxy. It returns the node and how long that took; on timeout the
// node is closed and the error says where it stood.
func startMember(relayAddr ma.Multiaddr, tcp bool, timeout time.Duration) (*node.Node, time.Duration, error) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, 0, fmt.Errorf("member key: %w", err)
	}
	return startMemberWith(relayAddr, tcp, timeout, key, nil)
}

// startMemberWith is startMember with the member's key, and edit (when
// not nil) changing its configuration last.
func startMemberWith(relayAddr ma.Multiaddr, tcp bool, timeout time.Duration, key crypto.PrivKey, edit func(*node.Config)) (*node.Node, time.Duration, error) {
	cfg := node.DefaultConfig(protocol.RolePrivate)
	cfg.Key = key
	cfg.Relays = []ma.Multiaddr{relayAddr}
	cfg.WebSocketOnly, cfg.Listen = !tcp, nil
	cfg.DisableDHT = true
	cfg.Network = networkName
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if edit != nil {
		edit(&cfg)
	}
	t0 := time.Now()
	n, err := node.New(cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("start member: %w", err)
	}
	sub, err := n.Host().EventBus().Subscribe(new(events.EvtRelay))
	if err != nil {
		n.Close()
		return nil, 0, fmt.Errorf("subscribe to relay events: %w", err)
	}
	defer sub.Close()
	// The event can fire before the subscription exists; the poll of
	// Reservations covers that, the subscription makes the wait prompt.
	last := "no event"
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for len(n.Reservations()) == 0 {
		select {
		case e := <-sub.Out():
			ev := e.(events.EvtRelay)
			last = string(ev.State)
			if ev.Reason != "" {
				last += ": " + ev.Reason
			}
		case <-poll.C:
		case <-deadline.C:
			n.Close()
			return nil, timeout, fmt.Errorf("no reservation within %s (last: %s)", timeout, last)
		}
	}
	return n, time.Since(t0), nil
}

// traffic is members sending to each other in pairs, each sender one
// message at a time, and what the receivers got.
type traffic struct {
	phase    atomic.Int32
	interval time.Duration
	mu       sync.Mutex
	rtts     map[int32][]float64 // ms, by phase
	acked    []map[uint64]bool   // by pair: sequence numbers acknowledged
	got      []map[uint64]bool   // by pair: sequence numbers received
	sent     atomic.Int64
	failed   atomic.Int64
	errs     map[string]int
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// startTraffic makes members[2i] send to members[2i+1] every interval
// until stop.
func startTraffic(members []*node.Node, interval time.Duration) *traffic {
	pairs := len(members) / 2
	t := &traffic{interval: interval, rtts: map[int32][]float64{}, errs: map[string]int{},
		acked: make([]map[uint64]bool, pairs), got: make([]map[uint64]bool, pairs)}
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	for i := range pairs {
		t.acked[i], t.got[i] = map[uint64]bool{}, map[uint64]bool{}
		from, to := members[2*i], members[2*i+1]
		to.Messages().SetHandler(func(m messaging.Message) {
			if len(m.Data) < 16 || m.From != from.ID() {
				return
			}
			p, seq := binary.BigEndian.Uint64(m.Data), binary.BigEndian.Uint64(m.Data[8:])
			if p != uint64(i) {
				return
			}
			t.mu.Lock()
			t.got[i][seq] = true
			t.mu.Unlock()
		})
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.sendLoop(ctx, i, from, to)
		}()
	}
	return t
}

func (t *traffic) sendLoop(ctx context.Context, pair int, from, to *node.Node) {
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for seq := uint64(1); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		data := make([]byte, 64)
		binary.BigEndian.PutUint64(data, uint64(pair))
		binary.BigEndian.PutUint64(data[8:], seq)
		phase := t.phase.Load()
		// A send outlives stop by up to its own timeout: a message
		// acknowledged must be counted, and one cut short is a failure,
		// not a loss.
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.sent.Add(1)
		rtt, err := from.Messages().Send(sctx, to.ID(), data)
		cancel()
		t.mu.Lock()
		if err != nil {
			t.failed.Add(1)
			t.errs[err.Error()]++
		} else {
			t.acked[pair][seq] = true
			t.rtts[phase] = append(t.rtts[phase], float64(rtt.Microseconds())/1000)
		}
		t.mu.Unlock()
	}
}

// waitAcked waits until every pair has had a message acknowledged.
func (t *traffic) waitAcked(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		t.mu.Lock()
		ok := true
		for _, a := range t.acked {
			ok = ok && len(a) > 0
		}
		t.mu.Unlock()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("no message acknowledged between members within " + timeout.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the senders and returns acknowledged messages that the
// receiver never got.
func (t *traffic) stop() (lost int) {
	t.cancel()
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, a := range t.acked {
		for seq := range a {
			if !t.got[i][seq] {
				lost++
			}
		}
	}
	return lost
}

// lostSoFar counts acknowledged messages the receiver has not got yet,
// without stopping: one in flight may count until its receiver takes it.
func (t *traffic) lostSoFar() (lost int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, a := range t.acked {
		for seq := range a {
			if !t.got[i][seq] {
				lost++
			}
		}
	}
	return lost
}

// take returns the round-trip times of phase, ms.
func (t *traffic) take(phase int32) []float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]float64(nil), t.rtts[phase]...)
}

// errors returns the send errors seen, by text.
func (t *traffic) errors() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.errs))
	for k, v := range t.errs {
		out[k] = v
	}
	return out
}
