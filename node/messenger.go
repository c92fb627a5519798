package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/protocol"
)

// Errors of Send. Each says what the caller can do about it.
var (
	ErrUnknownPeer = errors.New("unknown peer")
	ErrNotMember   = errors.New("not a member of this network")
	ErrTimeout     = errors.New("no acknowledgement in time")
	// ErrUnreachable means no path to a known peer works now (its relays
	// are down, say); sending may succeed later.
	ErrUnreachable = errors.New("peer unreachable")
	// ErrConnLost means the connection dropped after the message was sent
	// and before it was acknowledged: it may or may not have arrived.
	ErrConnLost = errors.New("connection lost before acknowledgement")
)

// Messenger sends and receives member messages over protocol.MessageID. One
// stream per receiver carries every message to it, in order, each
// acknowledged.
type Messenger struct {
	n       *Node
	session uint64

	mu      sync.Mutex
	out     map[peer.ID]*outbox // our streams to each receiver
	seen    map[peer.ID]senderState
	in      map[network.Stream]struct{}
	inbox   *inbox
	handler func(Message)
	subs    map[*subscription]struct{}

	wg sync.WaitGroup
}

type senderState struct{ session, last uint64 }

func newMessenger(n *Node) *Messenger {
	var b [8]byte
	_, _ = rand.Read(b[:])
	m := &Messenger{n: n, session: binary.BigEndian.Uint64(b[:]),
		out: map[peer.ID]*outbox{}, seen: map[peer.ID]senderState{},
		in: map[network.Stream]struct{}{}, inbox: newInbox(defaultInboxLen, defaultInboxBytes),
		subs: map[*subscription]struct{}{}}
	n.host.SetStreamHandler(protocol.MessageID, m.handle)
	return m
}

// Send delivers data to the member to and waits for its acknowledgement. It
// returns the round-trip time from write to acknowledgement.
func (m *Messenger) Send(ctx context.Context, to peer.ID, data []byte) (time.Duration, error) {
	if len(data) > protocol.MaxMessageSize {
		return 0, fmt.Errorf("%w (%d bytes)", protocol.ErrTooLarge, len(data))
	}
	if err := m.reach(ctx, to); err != nil {
		return 0, err
	}
	ob := m.outboxFor(to)
	ob.wmu.Lock()
	ob.seq++
	seq := ob.seq
	wait, start, err := ob.write(ctx, m, seq, data)
	ob.wmu.Unlock()
	if err != nil {
		return 0, err
	}
	select {
	case err := <-wait:
		if err != nil {
			return 0, err
		}
		return time.Since(start), nil
	case <-ctx.Done():
		ob.forget(seq)
		return 0, fmt.Errorf("%w: message %d to %s: %v", ErrTimeout, seq, to, ctx.Err())
	}
}

// reach makes sure a connection to a member exists.
func (m *Messenger) reach(ctx context.Context, to peer.ID) error {
	// The common case, on every message: a member already connected.
	if m.n.verdicts.get(to) == StateMember && m.n.host.Network().Connectedness(to) == network.Connected {
		return nil
	}
	_, known := m.n.book.Get(to)
	_, err := m.n.ConnectPeer(ctx, peer.AddrInfo{ID: to})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrRejected), errors.Is(err, ErrForeign):
		return fmt.Errorf("%w: %s: %v", ErrNotMember, to, err)
	case !known:
		return fmt.Errorf("%w %s: %v", ErrUnknownPeer, to, err)
	case ctx.Err() != nil:
		return fmt.Errorf("%w: reaching %s: %v", ErrTimeout, to, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrUnreachable, to, err)
}

func (m *Messenger) outboxFor(to peer.ID) *outbox {
	m.mu.Lock()
	defer m.mu.Unlock()
	ob, ok := m.out[to]
	if !ok {
		ob = &outbox{to: to}
		m.out[to] = ob
	}
	return ob
}

// Close resets every message stream and waits for their goroutines.
func (m *Messenger) Close() {
	m.n.host.RemoveStreamHandler(protocol.MessageID)
	m.mu.Lock()
	for _, ob := range m.out {
		ob.close()
	}
	for s := range m.in {
		s.Reset()
	}
	for sub := range m.subs {
		sub.stop()
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// outbox is the sending side towards one receiver. wmu serialises writes so
// that sequence numbers reach the wire in order.
type outbox struct {
	to  peer.ID
	wmu sync.Mutex
	seq uint64 // last sequence number sent; guarded by wmu

	mu      sync.Mutex
	s       network.Stream
	pending map[uint64]chan error
}

// write sends one message, opening a stream if none is live. A write that
// fails put nothing whole on the wire, so it is retried once on a fresh
// stream with the same sequence number.
func (ob *outbox) write(ctx context.Context, m *Messenger, seq uint64, data []byte) (<-chan error, time.Time, error) {
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		s, err := ob.stream(ctx, m)
		if err != nil {
			return nil, time.Time{}, err
		}
		wait := ob.expect(s, seq)
		start := time.Now()
		_ = s.SetWriteDeadline(time.Now().Add(protocol.MessageFrameTimeout))
		err = protocol.WriteData(s, seq, data)
		_ = s.SetWriteDeadline(time.Time{})
		if err == nil {
			return wait, start, nil
		}
		lastErr = err
		ob.fail(s, fmt.Errorf("write: %w", err))
	}
	return nil, time.Time{}, fmt.Errorf("send to %s: %w", ob.to, lastErr)
}

func (ob *outbox) stream(ctx context.Context, m *Messenger) (network.Stream, error) {
	ob.mu.Lock()
	s := ob.s
	ob.mu.Unlock()
	if s != nil {
		return s, nil
	}
	ctx = network.WithAllowLimitedConn(ctx, "overlay message")
	s, err := m.n.host.NewStream(ctx, ob.to, protocol.MessageID)
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
			ob.fail(s, fmt.Errorf("%w: %s", protocol.ErrRefused, f.Reason))
			return
		default:
			ob.fail(s, fmt.Errorf("%w: unexpected frame %#x from receiver", protocol.ErrMalformed, f.Type))
			return
		}
	}
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

// handle is the receiving side of one sender's stream.
func (m *Messenger) handle(s network.Stream) {
	from := s.Conn().RemotePeer()
	m.mu.Lock()
	m.in[s] = struct{}{}
	m.wg.Add(1)
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.in, s)
		m.mu.Unlock()
		m.wg.Done()
	}()
	ctx, cancel := context.WithTimeout(m.n.ctx, protocol.HandshakeTimeout)
	member := m.n.IsMember(ctx, from)
	cancel()
	if !member {
		_ = protocol.WriteMsgError(s, ErrNotMember.Error())
		s.Reset()
		return
	}
	f, err := protocol.ReadMsgFrame(s, protocol.HandshakeTimeout)
	if err != nil || !f.IsOpen() {
		m.n.log.Debug("bad message stream start", "peer", from, "err", err)
		s.Reset()
		return
	}
	session := f.Session
	for {
		f, err := protocol.ReadMsgFrame(s, protocol.MessageIdleTimeout)
		if err != nil {
			m.n.log.Debug("message stream ended", "peer", from, "err", err)
			s.Reset()
			return
		}
		if !f.IsData() {
			m.n.log.Debug("unexpected message frame", "peer", from, "type", f.Type)
			s.Reset()
			return
		}
		if m.firstTime(from, session, f.Seq) {
			m.deliver(Message{From: from, Seq: f.Seq, ReceivedAt: time.Now().UTC(), Data: f.Data})
		}
		if err := protocol.WriteAck(s, f.Seq); err != nil {
			s.Reset()
			return
		}
	}
}

// firstTime records (session, seq) and reports whether it is new: a sender's
// numbers rise within a session, so anything at or below the last is a resend.
func (m *Messenger) firstTime(from peer.ID, session, seq uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.seen[from]
	if ok && st.session == session && seq <= st.last {
		return false
	}
	m.seen[from] = senderState{session: session, last: seq}
	return true
}
