package tun

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/protocol"
)

// Send-side bounds.
const (
	// maxQueue bounds the frames waiting for one member, in bytes: past it
	// packets are dropped, as a router's full queue does, and TCP above
	// backs off. 1 MiB is a few milliseconds of the fastest paths.
	maxQueue = 1 << 20
	// openTimeout bounds reaching a member and opening a stream to it.
	openTimeout = 20 * time.Second
	// writeTimeout bounds one batched write: a path that stalls longer is
	// taken for dead, and the next write opens a new stream.
	writeTimeout = 10 * time.Second
	// maxAnswered bounds the ICMP answers for one failed batch.
	maxAnswered = 16
)

// link is the send side towards one member: a queue of packet frames and
// the goroutine that writes them on one stream, batched. It leaves the
// engine once idle for protocol.IPIdleTimeout.
type link struct {
	e    *Engine
	p    peer.ID
	kick chan struct{} // cap 1: frames are waiting, or the path changed

	// Guarded by e.mu (the queue is filled under it too):
	buf    []byte // frames waiting
	repath bool   // a direct connection appeared: move the stream
}

// enqueue queues pkt for member p, starting p's link if it has none, and
// reports whether the queue had room. The caller kicks the link.
func (e *Engine) enqueue(p peer.ID, pkt []byte) (*link, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.links[p]
	if l == nil {
		if e.ctx.Err() != nil {
			return nil, false
		}
		l = &link{e: e, p: p, kick: make(chan struct{}, 1)}
		e.links[p] = l
		e.goRun(l.run)
	}
	if len(l.buf)+protocol.IPFrameHeader+len(pkt) > maxQueue {
		return l, false
	}
	l.buf = protocol.AppendIPFrame(l.buf, pkt)
	return l, true
}

func (l *link) signal() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// repath moves p's stream to the direct connection that appeared: the
// next batch goes on a new stream, which the swarm opens on the direct
// connection; the old one is closed after the frames already written.
func (e *Engine) repath(p peer.ID) {
	e.mu.Lock()
	l := e.links[p]
	if l != nil {
		l.repath = true
	}
	e.mu.Unlock()
	if l != nil {
		l.signal()
	}
}

func (l *link) run() {
	e := l.e
	var (
		s   network.Stream
		out []byte
	)
	defer func() {
		if s != nil {
			s.Reset()
		}
	}()
	idle := time.NewTimer(protocol.IPIdleTimeout)
	defer idle.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-idle.C:
			e.mu.Lock()
			done := len(l.buf) == 0
			if done {
				delete(e.links, l.p)
			}
			e.mu.Unlock()
			if done {
				if s != nil {
					s.Close()
					s = nil
				}
				return
			}
			idle.Reset(protocol.IPIdleTimeout)
			continue
		case <-l.kick:
		}
		e.mu.Lock()
		out, l.buf = l.buf, out[:0]
		repath := l.repath
		l.repath = false
		e.mu.Unlock()
		if repath && s != nil {
			// Close, not Reset: the frames written still arrive.
			s.Close()
			s = nil
			e.counts.repaths.Add(1)
		}
		if len(out) == 0 {
			continue
		}
		idle.Reset(protocol.IPIdleTimeout)
		var err error
		s, err = l.write(s, out)
		if err != nil {
			// Once more on a fresh stream: the connection may have died
			// under this one (a relay restarting, a path that went away).
			s, err = l.write(nil, out)
		}
		if err != nil {
			e.log.Debug("packets to member dropped", "peer", l.p, "err", err)
			l.fail(out)
		}
	}
}

// write writes b on s, opening a stream first when s is nil. It returns
// the stream to use next: nil after an error.
func (l *link) write(s network.Stream, b []byte) (network.Stream, error) {
	if s == nil {
		var err error
		if s, err = l.open(); err != nil {
			return nil, err
		}
	}
	_ = s.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := s.Write(b); err != nil {
		s.Reset()
		return nil, fmt.Errorf("write packets: %w", err)
	}
	return s, nil
}

// open reaches the member and opens a packet stream to it, over a relayed
// connection if that is all there is.
func (l *link) open() (network.Stream, error) {
	e := l.e
	ctx, cancel := context.WithTimeout(e.ctx, openTimeout)
	defer cancel()
	if err := e.cfg.Members.EnsureMember(ctx, l.p); err != nil {
		return nil, fmt.Errorf("reach member: %w", err)
	}
	s, err := e.cfg.Host.NewStream(network.WithAllowLimitedConn(ctx, "overlay ip"), l.p, protocol.IPID)
	if err != nil {
		return nil, fmt.Errorf("open packet stream: %w", err)
	}
	e.counts.opened.Add(1)
	return s, nil
}

// fail drops the frames in b, answering the first few packets with ICMP
// host unreachable so that a program learns at once.
func (l *link) fail(b []byte) {
	e := l.e
	var answers [][]byte
	for len(b) >= protocol.IPFrameHeader {
		n := int(b[0])<<8 | int(b[1])
		if len(b) < protocol.IPFrameHeader+n {
			break
		}
		pkt := b[protocol.IPFrameHeader : protocol.IPFrameHeader+n]
		b = b[protocol.IPFrameHeader+n:]
		e.drop(DropUnreachable)
		if len(answers) < maxAnswered {
			if k, ok := parse(pkt); ok {
				if a := icmpAnswer(pkt, k, refuseUnreachable, e.cfg.MTU, writeOffset); a != nil {
					answers = append(answers, a)
				}
			}
		}
	}
	e.writeDevice(answers)
}
