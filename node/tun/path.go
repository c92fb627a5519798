package tun

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/protocol"
)

const (
	// writeOffset is the headroom before each packet written to the
	// device: wireguard-go's Linux TUN puts its virtio header there.
	writeOffset = 16
	// recvBatch bounds the packets one device write takes from a stream.
	recvBatch = 64
	// memberTimeout bounds waiting for an inbound stream's member verdict.
	memberTimeout = 10 * time.Second
	// readBuf is the receive side's stream buffer.
	readBuf = 256 << 10
)

// readLoop reads packets from the device in batches and queues each for
// its member's link; after each batch it writes a link's small batch
// itself, or kicks the link's goroutine (link.flush). It ends when the
// device is closed.
func (e *Engine) readLoop() {
	dev := e.cfg.Device
	n := max(dev.BatchSize(), 1)
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, protocol.MaxIPPacket)
	}
	sizes := make([]int, n)
	kicked := map[*link]struct{}{}
	var answers [][]byte
	for {
		cnt, err := dev.Read(bufs, sizes, 0)
		if err != nil {
			if e.ctx.Err() != nil {
				return
			}
			if errors.Is(err, os.ErrClosed) {
				e.log.Warn("the overlay interface went away (deleted?): no more packets are read from it", "err", err)
				return
			}
			// A batch the offload code could not split, say: the kernel
			// drops nothing else, so go on.
			e.log.Debug("read from interface", "err", err)
		}
		now := time.Now()
		for i := range cnt {
			if l, a := e.route(bufs[i][:sizes[i]], now); l != nil {
				kicked[l] = struct{}{}
			} else if a != nil {
				answers = append(answers, a)
			}
		}
		for l := range kicked {
			l.flush(now)
		}
		clear(kicked)
		if len(answers) > 0 {
			e.writeDevice(answers)
			answers = answers[:0]
		}
	}
}

// route queues a packet read from the device for its member. It returns
// the member's link, or else an ICMP answer for the device (or nothing:
// a packet dropped without one).
func (e *Engine) route(pkt []byte, now time.Time) (*link, []byte) {
	k, ok := parse(pkt)
	if !ok {
		e.drop(DropMalformed)
		return nil, nil
	}
	p, ok := e.members.lookup(k.dst)
	if !ok {
		if !InOverlay(k.dst) {
			e.drop(DropOffOverlay) // multicast, router solicitations, ...
			return nil, nil
		}
		e.drop(DropNoMember)
		return nil, icmpAnswer(pkt, k, refuseNoMember, e.cfg.MTU, writeOffset)
	}
	if err := e.filter.out(p, k, now); err != nil {
		e.drop(DropDeniedOut)
		e.log.Debug("packet denied by the access policy", "to", p, "err", err)
		return nil, icmpAnswer(pkt, k, refuseProhibited, e.cfg.MTU, writeOffset)
	}
	l, ok := e.enqueue(p, pkt)
	if !ok {
		e.drop(DropQueueFull)
		return l, nil
	}
	e.counts.pktOut.Add(1)
	e.counts.bytesOut.Add(uint64(len(pkt)))
	return l, nil
}

// writeDevice writes packets, each at writeOffset into its buffer.
func (e *Engine) writeDevice(pkts [][]byte) {
	if len(pkts) == 0 {
		return
	}
	if _, err := e.cfg.Device.Write(pkts, writeOffset); err != nil && e.ctx.Err() == nil {
		e.log.Debug("write to interface", "err", err)
	}
}

// handle serves a member's packet stream: it reads frames, checks each
// packet (the sender's own source address, this node's destination, the
// MTU, the access policy) and writes them to the device in batches.
func (e *Engine) handle(s network.Stream) {
	p := s.Conn().RemotePeer()
	ctx, cancel := context.WithTimeout(e.ctx, memberTimeout)
	member := e.cfg.Members.IsMember(ctx, p)
	cancel()
	if !member {
		s.Reset()
		return
	}
	e.mu.Lock()
	if e.ctx.Err() != nil {
		e.mu.Unlock()
		s.Reset()
		return
	}
	e.inbound[s] = struct{}{}
	e.wg.Add(1)
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.inbound, s)
		e.mu.Unlock()
		e.wg.Done()
	}()
	if err := e.receive(s, p); err != nil {
		if !errors.Is(err, io.EOF) && e.ctx.Err() == nil {
			e.log.Debug("packet stream ended", "peer", p, "err", err)
		}
		s.Reset()
		return
	}
	s.Close()
}

// receive reads s until it ends; io.EOF is a clean end.
func (e *Engine) receive(s network.Stream, p peer.ID) error {
	br := bufio.NewReaderSize(s, readBuf)
	var (
		bufs    [][]byte
		out     [][]byte
		renewed time.Time
	)
	for {
		now := time.Now()
		if now.Sub(renewed) > time.Second {
			_ = s.SetReadDeadline(now.Add(protocol.IPIdleTimeout))
			renewed = now
		}
		out = out[:0]
		var err error
		for len(out) < recvBatch {
			if len(bufs) == len(out) {
				bufs = append(bufs, make([]byte, writeOffset+protocol.MaxIPPacket))
			}
			buf := bufs[len(out)]
			var pkt []byte
			pkt, err = protocol.ReadIPFrame(br, buf[writeOffset:])
			if err != nil {
				break
			}
			if e.accept(p, pkt, now) {
				out = append(out, buf[:writeOffset+len(pkt)])
			}
			if br.Buffered() < protocol.IPFrameHeader {
				break
			}
		}
		e.writeDevice(out)
		if err != nil {
			return err
		}
	}
}

// accept checks a packet from member p; a refused one is counted, and
// answered through p's link when the refusal deserves an answer.
func (e *Engine) accept(p peer.ID, pkt []byte, now time.Time) bool {
	k, ok := parse(pkt)
	if !ok {
		e.drop(DropMalformed)
		return false
	}
	if from, ok := e.members.lookup(k.src); !ok || from != p {
		e.drop(DropSpoofed)
		return false
	}
	if k.dst != e.cfg.Addr4 && k.dst != e.cfg.Addr6 {
		e.drop(DropNotOurs)
		return false
	}
	var why refusal
	switch err := e.filter.in(p, k, now); {
	case len(pkt) > e.cfg.MTU:
		e.drop(DropTooBig)
		why = refuseTooBig
	case err != nil:
		e.drop(DropDeniedIn)
		e.log.Debug("packet denied by the access policy", "from", p, "err", err)
		why = refuseProhibited
	default:
		e.counts.pktIn.Add(1)
		e.counts.bytesIn.Add(uint64(len(pkt)))
		return true
	}
	if a := icmpAnswer(pkt, k, why, e.cfg.MTU, 0); a != nil {
		if l, ok := e.enqueue(p, a); ok {
			l.signal()
		}
	}
	return false
}
