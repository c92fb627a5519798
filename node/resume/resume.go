// Package resume carries a byte stream between two peers across changes of
// path: a Session outlives the libp2p stream under it. Each side numbers
// the bytes it writes, keeps those not yet acknowledged in a bounded
// replay buffer, and when the stream fails, or a direct connection to the
// peer appears while the session runs over a relay, the opening side (the
// client) carries the session on to a new stream (protocol.ResumeID) where
// each side sends again from what the other has received. Nothing is lost,
// repeated or reordered; a peer gone for longer than Config.GoneAfter
// fails the session with ErrGone.
//
// The protocol that starts a session (a tunnel, a perf run) owns its first
// stream: the client chooses a SessionID, sends it in its request, and
// hands the stream to Open once accepted; the server hands it to Accept.
package resume

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/protocol"
)

// DefaultBuffer caps, per session and per direction, the bytes written but
// not yet acknowledged (the replay buffer) and the bytes received but not
// yet read. A full buffer blocks Write (or stops reading the stream, which
// blocks the other side): back-pressure, never loss. It bounds a
// session's throughput to about DefaultBuffer per round trip; an idle
// session holds none of it.
const DefaultBuffer = 4 << 20

// DefaultGoneAfter is how long a session waits for its peer to come back
// (a new stream) before it fails with ErrGone.
const DefaultGoneAfter = 30 * time.Second

// ackDelay is how long a receiver holds back an ack of less than a quarter
// of the buffer, in the hope of sending it with data: acks only free the
// sender's replay buffer (a resume tells the offsets anew), so an
// interactive session need not pay a frame for each of its messages.
const ackDelay = 200 * time.Millisecond

// abortTimeout bounds the sending of an abort to the peer.
const abortTimeout = 2 * time.Second

// Errors of a session.
var (
	// ErrGone: the peer could not be reached on any path for GoneAfter,
	// or no longer holds the session.
	ErrGone = errors.New("session peer gone")
	// ErrClosed: the manager was closed.
	ErrClosed = errors.New("session manager closed")
	// ErrWriteClosed: Write after CloseWrite.
	ErrWriteClosed = errors.New("session write side closed")
	// ErrDuplicate: a session of that ID with that peer exists.
	ErrDuplicate = errors.New("session ID in use")
)

// Aborted is the failure of a session its peer gave up, with the peer's
// reason.
type Aborted struct{ Reason string }

func (a *Aborted) Error() string { return "session aborted by the peer: " + a.Reason }

// Transport opens and accepts streams; a libp2p host.Host is one.
type Transport interface {
	NewStream(ctx context.Context, p peer.ID, pids ...libp2pproto.ID) (network.Stream, error)
	SetStreamHandler(pid libp2pproto.ID, handler network.StreamHandler)
	RemoveStreamHandler(pid libp2pproto.ID)
}

// Config sets up a Manager.
type Config struct {
	Buffer    int           // 0: DefaultBuffer
	GoneAfter time.Duration // 0: DefaultGoneAfter
	// Bus, when set, delivers events.EvtPath: a direct path to a peer
	// moves the client sessions with it off their relayed streams.
	Bus event.Bus
	// Reach, when set, is asked to connect to a peer before a resume (the
	// node's EnsureMember); its failure does not stop the attempt.
	Reach  func(ctx context.Context, p peer.ID) error
	Logger *slog.Logger
}

type key struct {
	peer   peer.ID
	id     protocol.SessionID
	client bool
}

// tomb is a session the server saw complete: a late resume (its last ack
// lost with a stream) learns the end rather than ErrGone.
type tomb struct {
	recvOff uint64
	until   time.Time
}

// Manager holds a node's sessions and serves protocol.ResumeID.
type Manager struct {
	t   Transport
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	sessions map[key]*Session
	tombs    map[key]tomb
	swept    time.Time // tombs last cleared of the expired
	closed   bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts serving protocol.ResumeID on t and, with cfg.Bus, following
// path changes.
func New(t Transport, cfg Config) (*Manager, error) {
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.Buffer < 4*protocol.MaxResumeData {
		return nil, fmt.Errorf("session buffer %d bytes: want at least %d", cfg.Buffer, 4*protocol.MaxResumeData)
	}
	if cfg.GoneAfter <= 0 {
		cfg.GoneAfter = DefaultGoneAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{t: t, cfg: cfg, log: cfg.Logger, sessions: map[key]*Session{}, tombs: map[key]tomb{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if cfg.Bus != nil {
		err := events.Follow(m.ctx, cfg.Bus, new(events.EvtPath), func(f func()) { m.goRun(f) }, func(e any) {
			if ev := e.(events.EvtPath); ev.Path == events.PathDirect {
				m.migrate(ev.Peer)
			}
		})
		if err != nil {
			m.cancel()
			return nil, fmt.Errorf("follow path events: %w", err)
		}
	}
	t.SetStreamHandler(protocol.ResumeID, m.handleResume)
	return m, nil
}

// Close stops serving, aborts every session and waits for their
// goroutines.
func (m *Manager) Close() {
	m.t.RemoveStreamHandler(protocol.ResumeID)
	m.mu.Lock()
	m.closed = true
	ss := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		ss = append(ss, s)
	}
	m.mu.Unlock()
	for _, s := range ss {
		s.Abort(ErrClosed)
	}
	m.cancel()
	m.wg.Wait()
}

// goRun runs fn in a goroutine that Close waits for, unless closed.
func (m *Manager) goRun(fn func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		fn()
	}()
	return true
}

// NewID returns a fresh random session ID.
func NewID() protocol.SessionID {
	var id protocol.SessionID
	_, _ = rand.Read(id[:])
	return id
}

// Open starts the client side of session id on st, the stream its
// protocol opened and the server accepted.
func (m *Manager) Open(st network.Stream, id protocol.SessionID) (*Session, error) {
	return m.start(st, id, true, nil)
}

// Accept starts the server side of session id on st: accept writes the
// protocol's answer on st before the session sends anything. It fails
// with ErrDuplicate if the peer already holds a session of that ID.
func (m *Manager) Accept(st network.Stream, id protocol.SessionID, accept func(network.Stream) error) (*Session, error) {
	return m.start(st, id, false, accept)
}

func (m *Manager) start(st network.Stream, id protocol.SessionID, client bool, accept func(network.Stream) error) (*Session, error) {
	k := key{peer: st.Conn().RemotePeer(), id: id, client: client}
	s := newSession(m, k)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	if _, ok := m.sessions[k]; ok {
		m.mu.Unlock()
		return nil, ErrDuplicate
	}
	m.sessions[k] = s
	m.mu.Unlock()
	if accept != nil {
		if err := accept(st); err != nil {
			s.finish(fmt.Errorf("accept session: %w", err), false)
			st.Reset()
			return nil, err
		}
	}
	s.attach(st, 0, 0)
	return s, nil
}

// forget drops a finished session; the server keeps a completed one's
// final offset for GoneAfter.
func (m *Manager) forget(s *Session, completed bool, recvOff uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions[s.k] == s {
		delete(m.sessions, s.k)
	}
	now := time.Now()
	if now.Sub(m.swept) >= time.Second {
		m.swept = now
		for k, t := range m.tombs {
			if now.After(t.until) {
				delete(m.tombs, k)
			}
		}
	}
	if completed && !s.k.client {
		m.tombs[s.k] = tomb{recvOff: recvOff, until: now.Add(m.cfg.GoneAfter)}
	}
}

// migrate moves the client sessions with p off relayed streams.
func (m *Manager) migrate(p peer.ID) {
	m.mu.Lock()
	var ss []*Session
	for k, s := range m.sessions {
		if k.client && k.peer == p {
			ss = append(ss, s)
		}
	}
	m.mu.Unlock()
	for _, s := range ss {
		s.migrate()
	}
}

// Sessions reports how many sessions are open.
func (m *Manager) Sessions() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// handleResume is the server side of a resume.
func (m *Manager) handleResume(st network.Stream) {
	id, off, err := protocol.ReadResume(st, protocol.ResumeTimeout)
	if err != nil {
		m.log.Debug("bad resume", "peer", st.Conn().RemotePeer(), "err", err)
		st.Reset()
		return
	}
	k := key{peer: st.Conn().RemotePeer(), id: id}
	m.mu.Lock()
	s, ok := m.sessions[k]
	t, dead := m.tombs[k]
	dead = dead && time.Now().Before(t.until)
	m.mu.Unlock()
	_ = st.SetWriteDeadline(time.Now().Add(protocol.ResumeTimeout))
	switch {
	case ok:
		if err := s.resumed(st, off); err != nil {
			_ = protocol.WriteResumeGone(st, err.Error())
			_ = st.Close()
		}
	case dead:
		// Complete: the client lacks only the ack of its end of data. It
		// closes its side in turn; closing this stream's read side first
		// would reset that.
		if protocol.WriteResumed(st, t.recvOff) != nil || st.CloseWrite() != nil {
			st.Reset()
			return
		}
		_ = st.SetReadDeadline(time.Now().Add(protocol.ResumeTimeout))
		if _, err := io.Copy(io.Discard, io.LimitReader(st, protocol.MaxResumeFrame)); err != nil {
			st.Reset()
			return
		}
		_ = st.Close()
	default:
		_ = protocol.WriteResumeGone(st, "no such session")
		_ = st.Close()
	}
}

// isRelayed reports whether c goes through a relay.
func isRelayed(c network.Conn) bool {
	if c == nil {
		return false
	}
	_, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// Info is a session as List reports it.
type Info struct {
	Peer   peer.ID
	ID     protocol.SessionID
	Client bool // this side opened it
	// Conn carries the session now; nil between streams.
	Conn network.Conn
	// Sent counts the bytes the peer acknowledged, Received those that
	// arrived from it.
	Sent, Received uint64
}

// List reports the open sessions.
func (m *Manager) List() []Info {
	m.mu.Lock()
	ss := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		ss = append(ss, s)
	}
	m.mu.Unlock()
	out := make([]Info, 0, len(ss))
	for _, s := range ss {
		s.mu.Lock()
		i := Info{Peer: s.k.peer, ID: s.k.id, Client: s.k.client, Sent: s.sendBase, Received: s.recvOff}
		if s.cur != nil && !s.over {
			i.Conn = s.cur.st.Conn()
		}
		s.mu.Unlock()
		out = append(out, i)
	}
	return out
}
