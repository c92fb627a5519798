package messaging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/protocol"
)

// handle is the receiving side of one sender's stream.
func (m *Messenger) handle(s network.Stream) {
	from := s.Conn().RemotePeer()
	m.mu.Lock()
	if m.ctx.Err() != nil {
		m.mu.Unlock()
		s.Reset()
		return
	}
	m.in[s] = struct{}{}
	m.wg.Add(1)
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.in, s)
		m.mu.Unlock()
		m.wg.Done()
	}()
	ctx, cancel := context.WithTimeout(m.ctx, protocol.HandshakeTimeout)
	member := m.members.IsMember(ctx, from)
	cancel()
	if !member {
		_ = protocol.WriteMsgError(s, notMemberReason)
		s.Reset()
		return
	}
	f, err := protocol.ReadMsgFrame(s, protocol.HandshakeTimeout)
	if err != nil || !f.IsOpen() {
		m.log.Debug("bad message stream start", "peer", from, "err", err)
		s.Reset()
		return
	}
	session := f.Session
	for {
		f, err := protocol.ReadMsgFrame(s, protocol.MessageIdleTimeout)
		if errors.Is(err, io.EOF) {
			// The sender moved to another stream: every acknowledgement
			// is written, so close rather than reset, which could drop
			// the last ones in flight.
			_ = s.Close()
			return
		}
		if err != nil {
			m.log.Debug("message stream ended", "peer", from, "err", err)
			s.Reset()
			return
		}
		if !f.IsData() {
			m.log.Debug("unexpected message frame", "peer", from, "type", f.Type)
			s.Reset()
			return
		}
		if pol, ok := m.members.(Policy); ok {
			if err := pol.AllowReceive(from); err != nil {
				// The sender's Send fails with this reason, naming the rule.
				m.log.Debug("message refused by the access policy", "peer", from, "err", err)
				_ = protocol.WriteMsgError(s, fmt.Sprintf("%v: %v", ErrDenied, err))
				s.Reset()
				return
			}
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
		st.at = time.Now()
		m.seen[from] = st
		return false
	}
	m.seen[from] = senderState{session: session, last: seq, at: time.Now()}
	return true
}
