// Package messaging owns member messages: one ordered, acknowledged stream
// per sender and receiver (protocol.MessageID), the inbox people read, and
// subscriptions for programs. It knows the node only through two small
// interfaces: a Transport to open streams and a Members to reach and check
// members.
package messaging

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"

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
	// ErrSelf means the message was addressed to this node itself.
	ErrSelf = errors.New("cannot send to this node itself")
	// ErrDenied means the network's access policy forbids the message.
	ErrDenied = errors.New("denied by the access policy")
)

// Policy is what a Members may also implement: the network's access policy
// on messages. Each method returns nil, or why not, naming the rule; the
// receiver checks every message, the sender before it sends.
type Policy interface {
	AllowSend(to peer.ID) error
	AllowReceive(from peer.ID) error
}

// notMemberReason is what a receiver says when the sender has not passed
// its handshake; the sender words it for itself.
const notMemberReason = "not a member of this network"

// seenTTL is how long a sender's last sequence number is kept after its
// last message. Resends come within one Send (seconds), so this is ample
// for deduplication and keeps the map from growing with every sender ever.
const seenTTL = 10 * time.Minute

// pruneEvery is how often idle outboxes and stale sender records go.
const pruneEvery = time.Minute

// stallAfter is how long a message may wait for its acknowledgement before
// the connection it went on is checked: a path that silently died (a NAT
// mapping gone, a link down) otherwise holds messages until the transport's
// own idle timeout, 30 s or more.
const stallAfter = 3 * time.Second

// Waits between attempts to write a message again when no stream to its
// receiver can be opened.
const (
	resendBackoff    = 100 * time.Millisecond
	maxResendBackoff = 2 * time.Second
)

// Transport opens and accepts streams; a libp2p host.Host is one.
type Transport interface {
	Network() network.Network
	NewStream(ctx context.Context, p peer.ID, pids ...libp2pproto.ID) (network.Stream, error)
	SetStreamHandler(pid libp2pproto.ID, handler network.StreamHandler)
	RemoveStreamHandler(pid libp2pproto.ID)
}

// Members reaches and vouches for members.
type Members interface {
	// EnsureMember makes sure a connection to a member exists; its errors
	// wrap ErrUnknownPeer, ErrNotMember, ErrUnreachable or ErrTimeout.
	EnsureMember(ctx context.Context, p peer.ID) error
	// IsMember reports whether p passed the handshake, waiting for one in
	// progress until ctx is done.
	IsMember(ctx context.Context, p peer.ID) bool
}

// Messenger sends and receives member messages over protocol.MessageID. One
// stream per receiver carries every message to it, in order, each
// acknowledged.
type Messenger struct {
	t       Transport
	members Members
	log     *slog.Logger
	session uint64
	// seq numbers messages across all receivers: a receiver drops anything
	// at or below the last number it saw from this session, and an idle
	// outbox may be dropped and made anew.
	seq atomic.Uint64

	mu      sync.Mutex
	out     map[peer.ID]*outbox // our streams to each receiver
	seen    map[peer.ID]senderState
	in      map[network.Stream]struct{}
	inbox   *inbox
	handler func(Message)
	subs    map[*subscription]struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	tracer atomic.Pointer[Tracer] // told each Send's outcome (node/metrics)
}

type senderState struct {
	session, last uint64
	at            time.Time
}

// New starts a messenger: it serves protocol.MessageID on t until Close.
func New(t Transport, members Members, log *slog.Logger) *Messenger {
	var b [8]byte
	_, _ = rand.Read(b[:])
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Messenger{t: t, members: members, log: log, session: binary.BigEndian.Uint64(b[:]),
		out: map[peer.ID]*outbox{}, seen: map[peer.ID]senderState{},
		in: map[network.Stream]struct{}{}, inbox: newInbox(defaultInboxLen, defaultInboxBytes),
		subs: map[*subscription]struct{}{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	t.SetStreamHandler(protocol.MessageID, m.handle)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.pruneLoop()
	}()
	return m
}

// Send delivers data to the member to and waits for its acknowledgement. It
// returns the round-trip time from first write to acknowledgement. Every
// wait, including the one behind an earlier message to the same peer, ends
// with ctx. A connection lost before the acknowledgement is not the
// caller's problem: the message goes again on whatever path is left (a
// direct connection gone back to the relay, say), and the receiver keeps
// one copy.
func (m *Messenger) send(ctx context.Context, to peer.ID, data []byte) (time.Duration, error) {
	if len(data) > protocol.MaxMessageSize {
		return 0, fmt.Errorf("%w (%d bytes)", protocol.ErrTooLarge, len(data))
	}
	if pol, ok := m.members.(Policy); ok {
		if err := pol.AllowSend(to); err != nil {
			return 0, fmt.Errorf("%w: %v", ErrDenied, err)
		}
	}
	if err := m.reach(ctx, to); err != nil {
		return 0, err
	}
	ob := m.outboxFor(to)
	defer m.release(ob)
	if err := ob.take(ctx); err != nil {
		return 0, err
	}
	// Numbered under turn, so numbers reach each receiver's stream rising.
	p := &pending{seq: m.seq.Add(1), data: data, wake: make(chan struct{}, 1)}
	ob.add(p)
	start := time.Now()
	err := ob.flush(ctx, m)
	ob.give()
	if err != nil {
		// The connection reach found may be gone already (its relay
		// killed a moment ago): that is a path failure like any later
		// one, retried by await for as long as ctx has a deadline.
		if _, ok := ctx.Deadline(); !ok || final(err) || ctx.Err() != nil {
			ob.forget(p.seq)
			if ctx.Err() != nil {
				return 0, fmt.Errorf("%w: message %d to %s: %v (last: %v)", ErrTimeout, p.seq, to, ctx.Err(), err)
			}
			return 0, err
		}
		m.log.Debug("message not sent yet", "peer", to, "seq", p.seq, "err", err)
		p.signal()
	}
	if err := m.await(ctx, ob, p); err != nil {
		ob.forget(p.seq)
		return 0, err
	}
	return time.Since(start), nil
}

// reach makes sure a connection to member to exists. While no path works
// (its relay restarting, say) it tries again with growing waits for as long
// as ctx has a deadline, so a message sent during an outage goes once the
// path is back; without a deadline it fails at once.
func (m *Messenger) reach(ctx context.Context, to peer.ID) error {
	wait := resendBackoff
	for {
		err := m.members.EnsureMember(ctx, to)
		if err == nil || !errors.Is(err, ErrUnreachable) {
			return err
		}
		if _, ok := ctx.Deadline(); !ok {
			return err
		}
		if !pause(ctx, wait) {
			return fmt.Errorf("%w: no path to %s in time: %v", ErrTimeout, to, err)
		}
		wait = min(2*wait, maxResendBackoff)
	}
}

// pause waits d, or less if ctx ends first; it reports whether ctx lasted.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// await waits for p's acknowledgement, writing p again (with whatever else
// is pending) each time the stream it was on ends first.
func (m *Messenger) await(ctx context.Context, ob *outbox, p *pending) error {
	wait := resendBackoff
	stall := time.NewTimer(stallAfter)
	defer stall.Stop()
	for {
		select {
		case <-p.wake:
		case <-stall.C:
			ob.checkStalled(ctx, m, p)
			stall.Reset(stallAfter)
			continue
		case <-ctx.Done():
			return fmt.Errorf("%w: message %d to %s: %v", ErrTimeout, p.seq, ob.to, ctx.Err())
		}
		done, err, unsent := ob.state(p)
		switch {
		case done:
			return nil
		case err != nil:
			return err
		case !unsent:
			continue
		}
		if err := ob.take(ctx); err != nil {
			return err
		}
		err = ob.flush(ctx, m)
		ob.give()
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: message %d to %s: %v (last: %v)", ErrTimeout, p.seq, ob.to, ctx.Err(), err)
		}
		if final(err) {
			return err
		}
		// No path right now (a relay restarting, say): try again soon,
		// for as long as the caller waits, through reach, which clears
		// the dial backoff and skips relays known to be down.
		m.log.Debug("message not resent yet", "peer", ob.to, "seq", p.seq, "err", err)
		if !pause(ctx, wait) {
			return fmt.Errorf("%w: message %d to %s: %v (last: %v)", ErrTimeout, p.seq, ob.to, ctx.Err(), err)
		}
		wait = min(2*wait, maxResendBackoff)
		if rerr := m.reach(ctx, ob.to); rerr != nil && !errors.Is(rerr, ErrUnreachable) {
			if ctx.Err() != nil {
				return fmt.Errorf("%w: message %d to %s: %v (last: %v)", ErrTimeout, p.seq, ob.to, ctx.Err(), err)
			}
			return rerr
		}
		p.signal()
	}
}

// final reports a failure to write to a receiver that waiting will not
// cure: it does not speak the message protocol.
func final(err error) bool {
	var ns msmux.ErrNotSupported[libp2pproto.ID]
	return errors.As(err, &ns)
}

// Repath tells the messenger that a direct connection to p now exists: the
// stream to p leaves the relay, at once if messages are waiting, else by
// closing so the next message opens one on the direct connection. It
// returns at once; the move happens in the background.
func (m *Messenger) Repath(p peer.ID) {
	m.mu.Lock()
	ob, ok := m.out[p]
	if !ok || m.ctx.Err() != nil {
		m.mu.Unlock()
		return
	}
	ob.users++
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		defer m.release(ob)
		ctx, cancel := context.WithTimeout(m.ctx, protocol.MessageFrameTimeout)
		defer cancel()
		if err := ob.retire(ctx, m); err != nil {
			m.log.Debug("message stream not moved to the direct connection", "peer", p, "err", err)
		}
	}()
}

func (m *Messenger) outboxFor(to peer.ID) *outbox {
	m.mu.Lock()
	defer m.mu.Unlock()
	ob, ok := m.out[to]
	if !ok {
		ob = newOutbox(to)
		m.out[to] = ob
	}
	ob.users++
	return ob
}

func (m *Messenger) release(ob *outbox) {
	m.mu.Lock()
	ob.users--
	m.mu.Unlock()
}

// Close resets every message stream and waits for their goroutines.
func (m *Messenger) Close() {
	m.t.RemoveStreamHandler(protocol.MessageID)
	m.cancel()
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

// pruneLoop drops outboxes with no stream and no sender, and senders not
// heard from in seenTTL, so the maps hold only live peers.
func (m *Messenger) pruneLoop() {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case now := <-t.C:
			m.prune(now)
		}
	}
}

func (m *Messenger) prune(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, ob := range m.out {
		if ob.idle() {
			delete(m.out, id)
		}
	}
	for id, st := range m.seen {
		if now.Sub(st.at) > seenTTL {
			delete(m.seen, id)
		}
	}
}
