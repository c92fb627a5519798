package messaging

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/protocol"
)

// outbox is the sending side towards one receiver. Holding turn is the
// right to write, so that sequence numbers reach the wire in order; it is
// taken with the caller's context, never held past it.
type outbox struct {
	to    peer.ID
	turn  chan struct{}
	users int // Sends holding this outbox; guarded by Messenger.mu

	mu      sync.Mutex
	s       network.Stream
	pending map[uint64]chan error
}

// write sends one message, opening a stream if none is live. A write that
// fails put nothing whole on the wire, so it is retried once on a fresh
// stream with the same sequence number, unless ctx ended it.
func (ob *outbox) write(ctx context.Context, m *Messenger, seq uint64, data []byte) (<-chan error, time.Time, error) {
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		s, err := ob.stream(ctx, m)
		if err != nil {
			return nil, time.Time{}, err
		}
		wait := ob.expect(s, seq)
		start := time.Now()
		err = writeBounded(ctx, s, seq, data)
		if err == nil {
			return wait, start, nil
		}
		ob.fail(s, fmt.Errorf("write: %w", err))
		if ctx.Err() != nil {
			return nil, time.Time{}, fmt.Errorf("%w: writing message %d to %s: %v", ErrTimeout, seq, ob.to, ctx.Err())
		}
		lastErr = err
	}
	return nil, time.Time{}, fmt.Errorf("send to %s: %w", ob.to, lastErr)
}

// writeBounded writes one data frame within MessageFrameTimeout and no
// longer than ctx lasts.
func writeBounded(ctx context.Context, s network.Stream, seq uint64, data []byte) error {
	deadline := time.Now().Add(protocol.MessageFrameTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = s.SetWriteDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = s.SetWriteDeadline(time.Now()) })
	err := protocol.WriteData(s, seq, data)
	stop()
	_ = s.SetWriteDeadline(time.Time{})
	return err
}

func (ob *outbox) stream(ctx context.Context, m *Messenger) (network.Stream, error) {
	ob.mu.Lock()
	s := ob.s
	ob.mu.Unlock()
	if s != nil {
		return s, nil
	}
	ctx = network.WithAllowLimitedConn(ctx, "overlay message")
	s, err := m.t.NewStream(ctx, ob.to, protocol.MessageID)
	if err != nil {
		return nil, fmt.Errorf("open message stream to %s: %w", ob.to, err)
	}
	if err := protocol.WriteOpen(s, m.session); err != nil {
		s.Reset()
		return nil, fmt.Errorf("open message stream to %s: %w", ob.to, err)
	}
	ob.mu.Lock()
	ob.s = s
	ob.pending = map[uint64]chan error{}
	ob.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ob.readAcks(s)
	}()
	return s, nil
}

func (ob *outbox) expect(s network.Stream, seq uint64) <-chan error {
	ch := make(chan error, 1)
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.s != s {
		ch <- ErrConnLost
		return ch
	}
	ob.pending[seq] = ch
	return ch
}

func (ob *outbox) forget(seq uint64) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	delete(ob.pending, seq)
}

// readAcks resolves pending sends until the stream ends.
func (ob *outbox) readAcks(s network.Stream) {
	for {
		f, err := protocol.ReadMsgFrame(s, 0)
		switch {
		case err != nil:
			ob.fail(s, fmt.Errorf("%w: %v", ErrConnLost, err))
			return
		case f.IsAck():
			ob.mu.Lock()
			if ch, ok := ob.pending[f.Seq]; ok {
				ch <- nil
				delete(ob.pending, f.Seq)
			}
			ob.mu.Unlock()
		case f.IsError():
			ob.fail(s, ob.refusal(f.Reason))
			return
		default:
			ob.fail(s, fmt.Errorf("%w: unexpected frame %#x from receiver", protocol.ErrMalformed, f.Type))
			return
		}
	}
}

// refusal words the receiver's error frame from this node's side.
func (ob *outbox) refusal(reason string) error {
	if reason == notMemberReason {
		return fmt.Errorf("%w: peer %s refused this node's messages: it has no passed handshake with this node", ErrNotMember, ob.to)
	}
	return fmt.Errorf("%w: peer %s said: %s", protocol.ErrRefused, ob.to, reason)
}

// fail ends stream s, failing every message still waiting on it.
func (ob *outbox) fail(s network.Stream, err error) {
	s.Reset()
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.s != s {
		return
	}
	for seq, ch := range ob.pending {
		ch <- err
		delete(ob.pending, seq)
	}
	ob.s = nil
}

func (ob *outbox) close() {
	ob.mu.Lock()
	s := ob.s
	ob.mu.Unlock()
	if s != nil {
		ob.fail(s, errors.New("messenger closed"))
	}
}

// idle reports an outbox with no stream and no sender: safe to drop, as a
// new one starts on a fresh stream and sequence numbers are per messenger.
// The caller holds Messenger.mu.
func (ob *outbox) idle() bool {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return ob.s == nil && ob.users == 0
}
