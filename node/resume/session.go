package resume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/protocol"
)

// Session is a byte stream to a peer that survives changes of stream: an
// io.ReadWriter with a half-close. Read and Write may be called from one
// goroutine each.
//
// Invariants, under mu: the send buffer holds the bytes at positions
// [sendBase, sendEnd); every position below recvOff arrived (the end of
// data counting as one); a link (a stream) acts only while its gen is the
// session's gen, so at most one stream carries the session at a time.
type Session struct {
	m   *Manager
	k   key
	cap int

	mu   sync.Mutex
	cond *sync.Cond
	// sending side
	sendq     []chunk // unacknowledged bytes, oldest first
	sendBase  uint64
	sendEnd   uint64
	finQueued bool // CloseWrite was called: the end of data is at sendEnd
	finAcked  bool
	// receiving side
	recvq   []chunk // received bytes not yet read
	unread  int
	recvOff uint64
	recvFin bool
	// the stream
	cur        *link
	gen        uint64
	resuming   bool      // a client goroutine looks for a new stream
	detachedAt time.Time // when the session lost its stream (zero: has one)
	goneTimer  *time.Timer
	// the end
	over     bool
	err      error // why the session failed; nil once over: it completed
	abortOut bool  // tell the peer: this side gave up
	done     chan struct{}
}

// link is one stream carrying the session.
type link struct {
	st       network.Stream
	gen      uint64
	sendOff  uint64 // next position to send on this stream
	ackSent  uint64
	finSent  bool
	shutdown bool // the client closed its write side: all done
	kick     chan struct{}
	quit     chan struct{} // closed when the link no longer carries the session
	readDone chan struct{} // closed when its reader returns
}

// retireLocked wakes l's goroutines for good: another stream (or none)
// carries the session now. s.mu is held.
func (s *Session) retireLocked(l *link) {
	if l != nil && s.cur == l {
		s.cur = nil
	}
	if l != nil && l.quit != nil {
		close(l.quit)
		l.quit = nil
	}
}

func newSession(m *Manager, k key) *Session {
	s := &Session{m: m, k: k, cap: m.cfg.Buffer, done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Peer is the other side.
func (s *Session) Peer() peer.ID { return s.k.peer }

// ID names the session.
func (s *Session) ID() protocol.SessionID { return s.k.id }

// Conn is the connection of the stream that carries the session now; nil
// while it has none.
func (s *Session) Conn() network.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || s.over {
		return nil
	}
	return s.cur.st.Conn()
}

// Done is closed once the session is over: completed (both ends of data
// delivered and acknowledged) or failed (Err).
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session failed; nil while it runs or once it completed.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Write queues p to be sent, blocking while the send buffer is full.
func (s *Session) Write(p []byte) (int, error) {
	n := 0
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(p) > 0 {
		for !s.over && !s.finQueued && s.sendEnd-s.sendBase >= uint64(s.cap) {
			s.cond.Wait()
		}
		switch {
		case s.over:
			return n, s.errLocked()
		case s.finQueued:
			return n, ErrWriteClosed
		}
		room := s.cap - int(s.sendEnd-s.sendBase)
		if n := len(s.sendq); n == 0 || s.sendq[n-1].hi == chunkSize {
			s.sendq = append(s.sendq, chunk{b: getBuf()})
		}
		last := &s.sendq[len(s.sendq)-1]
		k := copy((*last.b)[last.hi:min(chunkSize, last.hi+room)], p)
		last.hi += k
		s.sendEnd += uint64(k)
		n += k
		p = p[k:]
		s.kickLocked()
	}
	return n, nil
}

// Read reads received bytes; io.EOF after the peer's end of data.
func (s *Session) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.unread == 0 && !s.recvFin && !s.over {
		s.cond.Wait()
	}
	if s.unread == 0 {
		if s.recvFin {
			return 0, io.EOF
		}
		return 0, s.errLocked()
	}
	wasFull := s.unread >= s.cap
	n := 0
	for n < len(p) && len(s.recvq) > 0 {
		c := copy(p[n:], s.recvq[0].data())
		n += c
		s.recvq[0].lo += c
		if s.recvq[0].lo == s.recvq[0].hi {
			putBuf(s.recvq[0].b)
			s.recvq[0] = chunk{}
			s.recvq = s.recvq[1:]
		}
	}
	s.unread -= n
	if wasFull && s.unread < s.cap {
		s.cond.Broadcast()
	}
	return n, nil
}

// ReadDone reports whether Read has returned io.EOF's worth: the peer's
// end of data arrived and every byte before it was read.
func (s *Session) ReadDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recvFin && s.unread == 0
}

// CloseWrite ends this side's data: the peer reads io.EOF after the last
// byte written.
func (s *Session) CloseWrite() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.over {
		return s.errLocked()
	}
	if !s.finQueued {
		s.finQueued = true
		s.cond.Broadcast()
		s.kickLocked()
	}
	return nil
}

// Wait waits until the session is over and returns Err, or ctx's error.
func (s *Session) Wait(ctx context.Context) error {
	select {
	case <-s.done:
		return s.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Abort gives the session up: the peer learns why (as an *Aborted), and
// Read and Write fail with cause. It does nothing once the session is over.
func (s *Session) Abort(cause error) {
	if cause == nil {
		cause = errors.New("aborted")
	}
	s.finish(cause, true)
}

func (s *Session) errLocked() error {
	if s.err != nil {
		return s.err
	}
	return io.ErrClosedPipe
}

func (s *Session) kickLocked() {
	if s.cur != nil {
		select {
		case s.cur.kick <- struct{}{}:
		default:
		}
	}
}

// finish ends the session: err nil means it completed. abort tells the
// peer, through the current stream's writer.
func (s *Session) finish(err error, abort bool) {
	s.mu.Lock()
	if s.over {
		s.mu.Unlock()
		return
	}
	s.over, s.err, s.abortOut = true, err, abort && s.cur != nil
	if s.goneTimer != nil {
		s.goneTimer.Stop()
	}
	cur, recvOff := s.cur, s.recvOff
	s.kickLocked()
	s.cond.Broadcast()
	s.mu.Unlock()
	close(s.done)
	switch {
	case cur == nil || err == nil:
		// Completed: the link's goroutines close the stream.
	case abort:
		// The writer sends the abort, then resets; a writer stuck on a
		// full stream gives up at the deadline.
		_ = cur.st.SetWriteDeadline(time.Now().Add(abortTimeout))
	default:
		cur.st.Reset()
	}
	s.m.forget(s, err == nil, recvOff)
	if err != nil && !errors.Is(err, ErrClosed) {
		s.m.log.Debug("session failed", "peer", s.k.peer, "client", s.k.client, "err", err)
	}
}

// ackLocked takes off the send buffer what the peer has received up to
// off; it reports an offset the peer cannot have reached.
func (s *Session) ackLocked(off uint64) error {
	limit := s.sendEnd
	if s.finQueued {
		limit++
	}
	if off > limit {
		return fmt.Errorf("%w: ack of position %d, only %d sent", protocol.ErrResumeMalformed, off, limit)
	}
	if off <= s.sendBase {
		return nil
	}
	if s.finQueued && off == s.sendEnd+1 {
		s.finAcked = true
		off = s.sendEnd
	}
	n := off - s.sendBase
	for n > 0 {
		c := &s.sendq[0]
		if avail := uint64(c.hi - c.lo); avail > n || (avail == n && len(s.sendq) == 1 && c.hi < chunkSize) {
			// Partly acknowledged, or the last chunk with room left.
			c.lo += int(n)
			break
		} else {
			n -= avail
		}
		putBuf(c.b)
		s.sendq[0] = chunk{}
		s.sendq = s.sendq[1:]
	}
	s.sendBase = off
	s.cond.Broadcast()
	return nil
}

// attach makes st carry the session from now on: the peer has received
// every position below peerOff; this side told it recvOff.
func (s *Session) attach(st network.Stream, peerOff, told uint64) {
	s.mu.Lock()
	if s.over {
		s.mu.Unlock()
		st.Reset()
		return
	}
	if err := s.ackLocked(peerOff); err != nil {
		s.mu.Unlock()
		st.Reset()
		s.finish(err, false)
		return
	}
	s.gen++
	old := s.cur
	s.retireLocked(old)
	l := &link{st: st, gen: s.gen, sendOff: max(peerOff, s.sendBase), ackSent: told,
		kick: make(chan struct{}, 1), quit: make(chan struct{}), readDone: make(chan struct{})}
	s.cur, s.detachedAt = l, time.Time{}
	if s.goneTimer != nil {
		s.goneTimer.Stop()
	}
	s.cond.Broadcast()
	s.kickLocked()
	s.mu.Unlock()
	if old != nil {
		old.st.Reset()
	}
	if !s.m.goRun(func() { s.write(l) }) || !s.m.goRun(func() { s.read(l) }) {
		s.finish(ErrClosed, false)
		st.Reset()
	}
}

// resumed is the server's side of a resume on st: the client has received
// every position below off.
func (s *Session) resumed(st network.Stream, off uint64) error {
	s.mu.Lock()
	if s.over {
		err := s.errLocked()
		s.mu.Unlock()
		return err
	}
	// Stop the current stream before telling the client where this side
	// stands, so that nothing arrives on it after.
	s.gen++
	if s.cur != nil {
		s.cur.st.Reset()
		s.retireLocked(s.cur)
	}
	told := s.recvOff
	s.cond.Broadcast()
	s.mu.Unlock()
	if err := protocol.WriteResumed(st, told); err != nil {
		st.Reset()
		s.lost(nil, err)
		return nil
	}
	_ = st.SetWriteDeadline(time.Time{})
	s.attach(st, off, told)
	return nil
}

// lost handles the failure of link l (nil: of a resume on the server).
func (s *Session) lost(l *link, cause error) {
	s.mu.Lock()
	if s.over || (l != nil && l.gen != s.gen) {
		s.mu.Unlock()
		return
	}
	s.gen++
	s.retireLocked(s.cur)
	if s.detachedAt.IsZero() {
		s.detachedAt = time.Now()
	}
	s.cond.Broadcast()
	if s.k.client {
		start := !s.resuming
		s.resuming = true
		s.mu.Unlock()
		if l != nil {
			l.st.Reset()
		}
		s.m.log.Debug("session stream lost, resuming", "peer", s.k.peer, "err", cause)
		if start && !s.m.goRun(func() { s.resumeLoop() }) {
			s.finish(ErrClosed, false)
		}
		return
	}
	if s.goneTimer != nil {
		s.goneTimer.Stop()
	}
	since := s.detachedAt
	s.goneTimer = time.AfterFunc(time.Until(since.Add(s.m.cfg.GoneAfter)), func() {
		s.mu.Lock()
		gone := s.cur == nil && s.detachedAt.Equal(since)
		s.mu.Unlock()
		if gone {
			s.finish(fmt.Errorf("%w: no stream from %s for %s (last: %v)", ErrGone, s.k.peer, s.m.cfg.GoneAfter, cause), false)
		}
	})
	s.mu.Unlock()
	if l != nil {
		l.st.Reset()
	}
}

// migrate moves a client session off a relayed stream, to the best
// connection to the peer: a direct one, which libp2p's swarm picks for a
// new stream over a relayed one (isBetterConn in p2p/net/swarm), an
// assumption TestTunnelMovesToDirectAndBack and TestPerfMovesToDirectAndBack
// check.
func (s *Session) migrate() {
	s.mu.Lock()
	if s.over || s.resuming || s.cur == nil || !isRelayed(s.cur.st.Conn()) {
		s.mu.Unlock()
		return
	}
	s.resuming = true
	s.mu.Unlock()
	if !s.m.goRun(func() { s.resumeLoop() }) {
		s.finish(ErrClosed, false)
	}
}

// resumeLoop carries the session on to a new stream, retrying until it
// has one, the peer says the session is gone, or the peer has been
// unreachable for GoneAfter.
func (s *Session) resumeLoop() {
	wait := 50 * time.Millisecond
	for {
		s.mu.Lock()
		over, since := s.over, s.detachedAt
		s.mu.Unlock()
		if over {
			return
		}
		if since.IsZero() {
			since = time.Now()
		}
		deadline := since.Add(s.m.cfg.GoneAfter)
		ctx, cancel := context.WithDeadline(s.m.ctx, deadline)
		err := s.resumeOnce(ctx)
		cancel()
		var gone *goneError
		switch {
		case err == nil:
			// Done, unless the new stream failed already: its failure
			// left the resume to this loop.
			s.mu.Lock()
			if s.cur != nil || s.over {
				s.resuming = false
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
			continue
		case errors.As(err, &gone):
			s.finish(fmt.Errorf("%w: %s says: %s", ErrGone, s.k.peer, gone.reason), false)
			return
		case s.m.ctx.Err() != nil:
			s.finish(ErrClosed, false)
			return
		case !time.Now().Before(deadline):
			s.finish(fmt.Errorf("%w: %s unreachable for %s: %v", ErrGone, s.k.peer, s.m.cfg.GoneAfter, err), false)
			return
		}
		s.m.log.Debug("session resume failed, retrying", "peer", s.k.peer, "in", wait, "err", err)
		select {
		case <-time.After(min(wait, time.Until(deadline))):
		case <-s.m.ctx.Done():
		case <-s.done:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

type goneError struct{ reason string }

func (g *goneError) Error() string { return "session gone: " + g.reason }

// resumeOnce opens a stream, stops the current one and resumes on the new.
func (s *Session) resumeOnce(ctx context.Context) error {
	if s.m.cfg.Reach != nil {
		_ = s.m.cfg.Reach(ctx, s.k.peer)
	}
	st, err := s.m.t.NewStream(network.WithAllowLimitedConn(ctx, "resume"), s.k.peer, protocol.ResumeID)
	if err != nil {
		return fmt.Errorf("open resume stream: %w", err)
	}
	s.mu.Lock()
	if s.over {
		s.mu.Unlock()
		st.Reset()
		return nil
	}
	s.gen++
	old := s.cur
	s.retireLocked(old)
	if s.detachedAt.IsZero() {
		s.detachedAt = time.Now()
	}
	told := s.recvOff
	s.cond.Broadcast()
	s.mu.Unlock()
	if old != nil {
		old.st.Reset()
	}
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	_ = st.SetWriteDeadline(time.Now().Add(protocol.ResumeTimeout))
	if err := protocol.WriteResume(st, s.k.id, told); err != nil {
		stop()
		st.Reset()
		return fmt.Errorf("write resume: %w", err)
	}
	a, err := protocol.ReadResumeAnswer(st, protocol.ResumeTimeout)
	if !stop() {
		st.Reset()
		return fmt.Errorf("resume: %w", ctx.Err())
	}
	if err != nil {
		st.Reset()
		return err
	}
	if !a.OK {
		_ = st.Close()
		return &goneError{reason: a.Reason}
	}
	_ = st.SetWriteDeadline(time.Time{})
	s.attach(st, a.Off, told)
	s.m.log.Debug("session resumed", "peer", s.k.peer, "via", st.Conn().RemoteMultiaddr(), "relayed", isRelayed(st.Conn()))
	return nil
}
