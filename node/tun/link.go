package tun

import (
	"context"
	"fmt"
	"runtime"
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

// Bounds of the read loop's own writes (link.flush).
const (
	// inlineMax bounds a batch the read loop writes itself: small packets
	// (an echo, a TCP acknowledgement, a keystroke, a DNS answer). Larger
	// batches, and a single packet near a large MTU, are bulk traffic,
	// which the link's goroutine writes while the read loop reads the next
	// batch; with 16 KiB (one full packet at MTU 16000) the read loop wrote
	// bulk itself, serialising reads and writes (docs/tun.md, run 7).
	inlineMax = 4 << 10
	// inlineTimeout bounds one write the read loop makes itself: a stream
	// that cannot take a small batch must not hold up the packets to every
	// other member for long. The link's goroutine then writes the batch on
	// a fresh stream, with writeTimeout.
	inlineTimeout = time.Second
	// slowWrite is how long a write may take before the stream counts as
	// pushing back (flow or congestion control, a stalled path): the read
	// loop leaves a link whose last write was slow to its goroutine.
	slowWrite = time.Millisecond
)

// link is the send side towards one member: a queue of packet frames, the
// member's stream, and the goroutine that writes the queue on it, batched.
//
// One writer at a time holds the stream and the queued frames: the link's
// goroutine, or the read loop itself (flush), which writes a small batch
// when the link is idle and its stream takes writes at once. That saves a
// goroutine hand-off (a wake-up) per packet on an interactive path, where
// each packet is a batch of its own; bulk traffic still goes through the
// goroutine. Either way frames go out in the order they were queued.
//
// The link leaves the engine once idle for protocol.IPIdleTimeout.
type link struct {
	e    *Engine
	p    peer.ID
	kick chan struct{} // cap 1: frames are waiting, or the path changed

	// Guarded by e.mu (the queue is filled under it too):
	buf     []byte         // frames waiting
	spare   []byte         // the other buffer, while no writer holds it
	s       network.Stream // the stream, while no writer holds it; nil: none open
	writing bool           // a writer holds the stream and a batch
	slow    bool           // the last write took longer than slowWrite
	repath  bool           // a direct connection appeared: move the stream
	closed  bool           // the goroutine ended: a stream given back is reset
	last    time.Time      // when the last write started
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

// take hands a writer the stream and the queued frames. e.mu is held.
func (l *link) take(now time.Time) (network.Stream, []byte) {
	s, out := l.s, l.buf
	l.s, l.buf, l.spare = nil, l.spare[:0], nil
	l.writing = true
	l.last = now
	return s, out
}

// give takes back from the writer the stream (nil: none) and the batch's
// buffer, and reports whether the goroutine has more to do. e.mu is held.
func (l *link) give(s network.Stream, out []byte, slow bool) (more bool) {
	l.writing = false
	l.slow = slow
	l.spare = out[:0]
	if l.closed {
		if s != nil {
			s.Reset()
		}
		return false
	}
	l.s = s
	return len(l.buf) > 0 || l.repath
}

// flush writes the link's queued frames from the calling goroutine (the
// read loop) when the link is idle, has a stream that took its last write
// at once, and the batch is small; otherwise it kicks the link's
// goroutine, which also takes over a batch whose write here failed.
func (l *link) flush(now time.Time) {
	e := l.e
	e.mu.Lock()
	if l.writing || l.s == nil || l.slow || l.repath || len(l.buf) == 0 || len(l.buf) > inlineMax {
		e.mu.Unlock()
		l.signal()
		return
	}
	s, out := l.take(now)
	e.mu.Unlock()
	t0 := time.Now()
	_ = s.SetWriteDeadline(t0.Add(inlineTimeout))
	_, err := s.Write(out)
	slow := time.Since(t0) > slowWrite
	e.mu.Lock()
	if err != nil {
		// The goroutine writes the batch first, on a fresh stream. Frames
		// before a cut one may arrive twice, as with the goroutine's own
		// second try: IP above copes with duplicates.
		s.Reset()
		s = nil
		out = append(out, l.buf...)
		l.buf, out = out, l.buf
		e.log.Debug("packet write from the read loop failed; the link retries", "peer", l.p, "err", err)
	} else {
		e.counts.inline.Add(1)
	}
	more := l.give(s, out, slow)
	e.mu.Unlock()
	if more || err != nil {
		l.signal()
	}
	if err == nil {
		// The write woke the transport's sending goroutine (yamux's send
		// loop, quic-go's connection): let it run now rather than after
		// this loop's next read from the device.
		runtime.Gosched()
	}
}

func (l *link) run() {
	e := l.e
	defer func() {
		e.mu.Lock()
		l.closed = true
		s := l.s
		l.s = nil
		e.mu.Unlock()
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
			left := protocol.IPIdleTimeout - time.Since(l.last)
			done := len(l.buf) == 0 && !l.writing && left <= 0
			var s network.Stream
			if done {
				delete(e.links, l.p)
				s, l.s = l.s, nil
			}
			e.mu.Unlock()
			if done {
				if s != nil {
					s.Close()
				}
				return
			}
			idle.Reset(max(left, time.Second))
			continue
		case <-l.kick:
		}
		e.mu.Lock()
		if l.writing {
			// The read loop holds the stream; it kicks again if more is
			// queued by the time it is done.
			e.mu.Unlock()
			continue
		}
		repath := l.repath
		l.repath = false
		s, out := l.take(time.Now())
		e.mu.Unlock()
		if repath && s != nil {
			// Close, not Reset: the frames written still arrive.
			s.Close()
			s = nil
			e.counts.repaths.Add(1)
		}
		slow := false
		if len(out) > 0 {
			var (
				took time.Duration
				err  error
			)
			s, took, err = l.write(s, out)
			if err != nil {
				// Once more on a fresh stream: the connection may have died
				// under this one (a relay restarting, a path that went away).
				s, took, err = l.write(nil, out)
			}
			if err != nil {
				e.log.Debug("packets to member dropped", "peer", l.p, "err", err)
				l.fail(out)
			}
			slow = err != nil || took > slowWrite
		}
		e.mu.Lock()
		more := l.give(s, out, slow)
		e.mu.Unlock()
		if more {
			l.signal()
		}
	}
}

// write writes b on s, opening a stream first when s is nil. It returns
// the stream to use next (nil after an error) and how long the write
// took, the opening aside.
func (l *link) write(s network.Stream, b []byte) (network.Stream, time.Duration, error) {
	if s == nil {
		var err error
		if s, err = l.open(); err != nil {
			return nil, 0, err
		}
	}
	t0 := time.Now()
	_ = s.SetWriteDeadline(t0.Add(writeTimeout))
	if _, err := s.Write(b); err != nil {
		s.Reset()
		return nil, time.Since(t0), fmt.Errorf("write packets: %w", err)
	}
	return s, time.Since(t0), nil
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
