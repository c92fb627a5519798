package messaging

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/protocol"
)

// outbox is the sending side towards one receiver. Holding turn is the
// right to write, so that sequence numbers reach the wire in order; it is
// taken with the caller's context, never held past it.
//
// Every message stays pending until acknowledged. Whenever messages go on a
// new stream (the old one broke, or a direct connection replaced a relayed
// one), every pending message is written again first, oldest first: the
// receiver delivers only numbers above the last it delivered, so it must
// never see a newer message before an older one it still lacks. It drops
// the copies it already has, so nothing is lost, repeated or reordered.
type outbox struct {
	to    peer.ID
	turn  chan struct{}
	users int // Sends holding this outbox; guarded by Messenger.mu

	mu      sync.Mutex
	s       network.Stream // where new messages go; nil until opened
	pending map[uint64]*pending
}

// pending is a message written, or about to be, and not yet acknowledged.
type pending struct {
	seq  uint64
	data []byte
	on   network.Stream // the stream it was last written on; nil: needs writing
	done bool           // acknowledged
	err  error          // the receiver refused it: final
	wake chan struct{}  // one slot: something above changed
}

func newOutbox(to peer.ID) *outbox {
	return &outbox{to: to, turn: make(chan struct{}, 1), pending: map[uint64]*pending{}}
}

func (p *pending) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// take waits for the right to write, as long as ctx lasts.
func (ob *outbox) take(ctx context.Context) error {
	select {
	case ob.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: an earlier message to %s is still being written: %v", ErrTimeout, ob.to, ctx.Err())
	}
}

func (ob *outbox) give() { <-ob.turn }

// add makes p pending, to be written by the next flush.
func (ob *outbox) add(p *pending) {
	ob.mu.Lock()
	ob.pending[p.seq] = p
	ob.mu.Unlock()
}

// flush writes every pending message that is on no live stream, on the
// best stream to the receiver. A stream that fails while written is
// replaced once. The caller holds turn.
func (ob *outbox) flush(ctx context.Context, m *Messenger) error {
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		s, err := ob.stream(ctx, m)
		if err != nil {
			return err
		}
		err = ob.writeUnsent(ctx, s)
		if err == nil {
			return nil
		}
		s.Reset()
		ob.fail(s, nil)
		if ctx.Err() != nil {
			return fmt.Errorf("%w: writing to %s: %v", ErrTimeout, ob.to, ctx.Err())
		}
		lastErr = err
	}
	return fmt.Errorf("send to %s: %w", ob.to, lastErr)
}

// writeUnsent writes, oldest first, the pending messages that need writing.
func (ob *outbox) writeUnsent(ctx context.Context, s network.Stream) error {
	ob.mu.Lock()
	var todo []*pending
	for _, p := range ob.pending {
		if p.on == nil && !p.done && p.err == nil {
			p.on = s // set before writing, so a failure of s finds it
			todo = append(todo, p)
		}
	}
	ob.mu.Unlock()
	slices.SortFunc(todo, func(a, b *pending) int { return cmp.Compare(a.seq, b.seq) })
	for _, p := range todo {
		if err := writeBounded(ctx, s, p.seq, p.data); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
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

// stream returns the stream new messages go on, opening one if there is
// none, or if the current one runs over a relay while a direct connection
// to the receiver now exists. The caller holds turn.
func (ob *outbox) stream(ctx context.Context, m *Messenger) (network.Stream, error) {
	ob.mu.Lock()
	s := ob.s
	ob.mu.Unlock()
	if s != nil && !(book.IsRelayed(s.Conn().RemoteMultiaddr()) && hasDirectConn(m.t.Network(), ob.to)) {
		return s, nil
	}
	ctx = network.WithAllowLimitedConn(ctx, "overlay message")
	ns, err := m.t.NewStream(ctx, ob.to, protocol.MessageID)
	if err != nil {
		return nil, fmt.Errorf("open message stream to %s: %w", ob.to, err)
	}
	if err := protocol.WriteOpen(ns, m.session); err != nil {
		ns.Reset()
		return nil, fmt.Errorf("open message stream to %s: %w", ob.to, err)
	}
	ob.mu.Lock()
	old := ob.s
	ob.s = ns
	for _, p := range ob.pending {
		p.on = nil
	}
	ob.mu.Unlock()
	if old != nil {
		// Acknowledgements still on their way come in on old until the
		// receiver, having read to its end, closes it.
		_ = old.CloseWrite()
		m.log.Debug("message stream moved", "peer", ob.to, "from", old.Conn().RemoteMultiaddr(), "to", ns.Conn().RemoteMultiaddr())
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ob.readAcks(ns)
	}()
	return ns, nil
}

// retire lets go of a stream that runs over a relay once a direct
// connection exists and nothing waits on it: the next message opens a
// stream on the direct connection, and the relayed connection can go idle.
// With messages pending it moves them at once instead.
func (ob *outbox) retire(ctx context.Context, m *Messenger) error {
	if err := ob.take(ctx); err != nil {
		return err
	}
	defer ob.give()
	ob.mu.Lock()
	s := ob.s
	busy := len(ob.pending) > 0
	ob.mu.Unlock()
	if s == nil || !book.IsRelayed(s.Conn().RemoteMultiaddr()) || !hasDirectConn(m.t.Network(), ob.to) {
		return nil
	}
	if busy {
		return ob.flush(ctx, m)
	}
	ob.mu.Lock()
	if ob.s == s {
		ob.s = nil
	}
	ob.mu.Unlock()
	return s.CloseWrite()
}

// readAcks resolves pending messages until the stream ends.
func (ob *outbox) readAcks(s network.Stream) {
	for {
		f, err := protocol.ReadMsgFrame(s, 0)
		switch {
		case errors.Is(err, io.EOF):
			ob.fail(s, nil)
			_ = s.Close()
			return
		case err != nil:
			s.Reset()
			ob.fail(s, nil)
			return
		case f.IsAck():
			ob.ack(f.Seq)
		case f.IsError():
			s.Reset()
			ob.fail(s, ob.refusal(f.Reason))
			return
		default:
			s.Reset()
			ob.fail(s, fmt.Errorf("%w: unexpected frame %#x from receiver", protocol.ErrMalformed, f.Type))
			return
		}
	}
}

func (ob *outbox) ack(seq uint64) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if p, ok := ob.pending[seq]; ok {
		p.done = true
		delete(ob.pending, seq)
		p.signal()
	}
}

// refusal words the receiver's error frame from this node's side.
func (ob *outbox) refusal(reason string) error {
	if reason == notMemberReason {
		return fmt.Errorf("%w: peer %s refused this node's messages: it has no passed handshake with this node", ErrNotMember, ob.to)
	}
	if strings.HasPrefix(reason, ErrDenied.Error()) {
		return fmt.Errorf("%w: peer %s refused this node's message: %s", ErrDenied, ob.to, strings.TrimPrefix(reason, ErrDenied.Error()+": "))
	}
	return fmt.Errorf("%w: peer %s said: %s", protocol.ErrRefused, ob.to, reason)
}

// fail records that stream s ended (the caller closed or reset it). The
// messages last written on it need writing again, or, when err is set (the
// receiver refused them), fail with err.
func (ob *outbox) fail(s network.Stream, err error) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.s == s {
		ob.s = nil
	}
	for seq, p := range ob.pending {
		if p.on != s {
			continue
		}
		p.on = nil
		if err != nil {
			p.err = err
			delete(ob.pending, seq)
		}
		p.signal()
	}
}

// state reads p's outcome: acknowledged, refused, or waiting; unsent says
// it needs writing again.
func (ob *outbox) state(p *pending) (done bool, err error, unsent bool) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return p.done, p.err, p.on == nil && !p.done && p.err == nil
}

func (ob *outbox) forget(seq uint64) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	delete(ob.pending, seq)
}

// close resets the stream and fails every pending message.
func (ob *outbox) close() {
	ob.mu.Lock()
	s := ob.s
	ob.s = nil
	for seq, p := range ob.pending {
		p.err = errClosed
		delete(ob.pending, seq)
		p.signal()
	}
	ob.mu.Unlock()
	if s != nil {
		s.Reset()
	}
}

var errClosed = errors.New("messenger closed")

// idle reports an outbox with no stream, nothing pending and no sender:
// safe to drop, as a new one starts on a fresh stream and sequence numbers
// are per messenger. The caller holds Messenger.mu.
func (ob *outbox) idle() bool {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return ob.s == nil && ob.users == 0 && len(ob.pending) == 0
}

func hasDirectConn(n network.Network, p peer.ID) bool {
	for _, c := range n.ConnsToPeer(p) {
		if !c.IsClosed() && !book.IsRelayed(c.RemoteMultiaddr()) {
			return true
		}
	}
	return false
}
