package resume

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/overlay-net/overlay/protocol"
)

// write is link l's only writer: data from the send buffer, acks, the end
// of data, and the abort of a session given up. Every frame goes out in one
// Write. It returns when l no longer carries the session.
func (s *Session) write(l *link) {
	buf := make([]byte, 0, 64)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed, late := false, false
	for {
		s.mu.Lock()
		if l.gen != s.gen {
			s.mu.Unlock()
			return
		}
		if s.over {
			err, abort := s.err, s.abortOut
			s.mu.Unlock()
			switch {
			case err == nil:
			case abort && protocol.WriteResumeAbort(l.st, err.Error()) == nil && l.st.CloseWrite() == nil:
				// The abort must reach the peer before the connection may
				// go (a node closing): wait, briefly, for the peer to
				// drop the stream.
				_ = l.st.SetReadDeadline(time.Now().Add(abortTimeout))
				<-l.readDone
				l.st.Reset()
			default:
				l.st.Reset()
			}
			return
		}
		buf = buf[:0]
		l.sendOff = max(l.sendOff, s.sendBase)
		switch {
		case l.sendOff < s.sendEnd:
			// A few frames per Write: fewer wake-ups of this goroutine
			// and of the muxer's, per byte.
			for l.sendOff < s.sendEnd && len(buf) < writeBatch {
				buf = s.appendDataLocked(buf, l)
			}
		case s.finQueued && !l.finSent:
			buf = protocol.AppendResumeFin(buf, s.sendEnd)
			l.finSent = true
		}
		if owed := s.recvOff - l.ackSent; owed > 0 && (len(buf) > 0 || late || s.recvFin || owed >= uint64(s.cap/4)) {
			buf = protocol.AppendResumeAck(buf, s.recvOff)
			l.ackSent, late = s.recvOff, false
		}
		if len(buf) == 0 {
			if s.finAcked && s.recvFin && !l.shutdown {
				l.shutdown = true
				s.mu.Unlock()
				s.shutdown(l)
				return
			}
			if s.recvOff > l.ackSent && !armed {
				timer.Reset(ackDelay)
				armed = true
			}
			quit := l.quit
			s.mu.Unlock()
			select {
			case <-l.kick:
			case <-timer.C:
				armed, late = false, true
			case <-quit:
			}
			continue
		}
		s.mu.Unlock()
		if _, err := l.st.Write(buf); err != nil {
			s.lost(l, fmt.Errorf("write: %w", err))
			return
		}
		if cap(buf) > writeBatch+protocol.MaxResumeData+32 {
			buf = make([]byte, 0, 64)
		}
	}
}

// writeBatch is how many bytes of data frames the writer gathers for one
// Write, at most (plus one frame).
const writeBatch = 4 * protocol.MaxResumeData

// shutdown ends a completed session's stream: each side has its data
// acknowledged and the other's end of data. The server closes its stream
// and is done; the client closes its write side, and is done when its
// reader sees the server's close (else a lost last ack is resumed).
func (s *Session) shutdown(l *link) {
	_ = l.st.CloseWrite()
	if !s.k.client {
		// The reader closes the stream at the client's close: closing
		// the read side first would reset the client's last frames.
		_ = l.st.SetReadDeadline(time.Now().Add(protocol.ResumeTimeout))
		s.finish(nil, false)
	}
}

// appendDataLocked appends one data frame of the bytes from l.sendOff on,
// at most MaxResumeData of them, gathered from the send buffer's chunks.
func (s *Session) appendDataLocked(buf []byte, l *link) []byte {
	n := int(min(s.sendEnd-l.sendOff, protocol.MaxResumeData))
	buf = protocol.AppendResumeDataHeader(buf, l.sendOff, n)
	pos, want := s.sendBase, l.sendOff
	for _, ch := range s.sendq {
		if n == 0 {
			break
		}
		c := ch.data()
		if pos+uint64(len(c)) <= want {
			pos += uint64(len(c))
			continue
		}
		c = c[want-pos:]
		k := min(len(c), n)
		buf = append(buf, c[:k]...)
		n -= k
		want += uint64(k)
		pos = want
	}
	l.sendOff = want
	return buf
}

// read is link l's reader. It returns when l no longer carries the
// session, after handing a failure of the stream to lost.
func (s *Session) read(l *link) {
	defer close(l.readDone)
	var buf *[]byte // taken from the pool when a frame arrives
	get := func() []byte {
		buf = getBuf()
		return *buf
	}
	release := func() {
		if buf != nil {
			putBuf(buf)
			buf = nil
		}
	}
	defer release()
	for {
		f, err := protocol.ReadResumeFrameBuf(l.st, get)
		if err != nil {
			s.readFailed(l, err)
			return
		}
		s.mu.Lock()
		if l.gen == s.gen && s.over {
			// Completed or aborted: nothing more is due, wait for the
			// close.
			s.mu.Unlock()
			release()
			continue
		}
		if l.gen != s.gen || s.over {
			s.mu.Unlock()
			return
		}
		kept, err := s.applyLocked(l, f, buf)
		if kept {
			buf = nil // the receive queue holds it now
		}
		release()
		if err != nil {
			s.mu.Unlock()
			var a *Aborted
			s.finish(err, false)
			if !errors.As(err, &a) {
				s.m.log.Info("session cut: bad frame from peer", "peer", s.k.peer, "err", err)
			}
			l.st.Reset()
			return
		}
		s.mu.Unlock()
	}
}

func (s *Session) readFailed(l *link, err error) {
	s.mu.Lock()
	complete := l.gen == s.gen && s.finAcked && s.recvFin
	s.mu.Unlock()
	switch {
	case complete && errors.Is(err, io.EOF):
		_ = l.st.Close()
		s.finish(nil, false)
	case complete && !s.k.client:
		l.st.Reset()
	case errors.Is(err, protocol.ErrResumeMalformed):
		s.finish(fmt.Errorf("session with %s: %w", s.k.peer, err), false)
		s.m.log.Info("session cut: bad frame from peer", "peer", s.k.peer, "err", err)
	default:
		s.lost(l, fmt.Errorf("read: %w", err))
	}
}

// applyLocked applies one frame that arrived on the current link, read
// into buf. It waits (releasing mu) while the receive buffer is full, and
// reports whether it kept buf (the frame's data, queued to be read).
func (s *Session) applyLocked(l *link, f protocol.ResumeFrame, buf *[]byte) (kept bool, err error) {
	switch f.Kind {
	case protocol.ResumeData:
		if s.recvFin || f.Off > s.recvOff {
			return false, fmt.Errorf("%w: data at position %d, expected %d", protocol.ErrResumeMalformed, f.Off, s.recvOff)
		}
		skip := s.recvOff - f.Off
		if skip >= uint64(len(f.Data)) {
			return false, nil // sent again before the resume: already here
		}
		for s.unread >= s.cap && l.gen == s.gen && !s.over {
			s.cond.Wait()
		}
		if l.gen != s.gen || s.over {
			return false, nil
		}
		d := f.Data[skip:]
		if len(f.Data) == 0 || &f.Data[0] != &(*buf)[8] {
			// Not read into buf (cannot happen with a full-size buf).
			return false, fmt.Errorf("%w: data outside the read buffer", protocol.ErrResumeMalformed)
		}
		lo := 8 + int(skip)
		s.recvq = append(s.recvq, chunk{b: buf, lo: lo, hi: lo + len(d)})
		kept = true
		s.unread += len(d)
		s.recvOff += uint64(len(d))
	case protocol.ResumeAck:
		if err := s.ackLocked(f.Off); err != nil {
			return false, err
		}
	case protocol.ResumeFin:
		switch {
		case s.recvFin && f.Off+1 == s.recvOff:
			return false, nil
		case s.recvFin || f.Off != s.recvOff:
			return false, fmt.Errorf("%w: end of data at %d, expected %d", protocol.ErrResumeMalformed, f.Off, s.recvOff)
		}
		s.recvFin = true
		s.recvOff++
	case protocol.ResumeAbort:
		return false, &Aborted{Reason: f.Reason}
	}
	s.cond.Broadcast()
	s.kickLocked()
	return kept, nil
}
