package netcheck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Serving limits: a relay answers at most this many Binding requests a
// second (with a burst as large), whoever asks. A response is 40 bytes
// (IPv4) for a request of at least 20, so the reflection a spoofer can get
// out of a relay is bounded by this rate.
const (
	DefaultServeRate  = 500
	DefaultServeBurst = 500
)

// Socket is the one reader of the non-QUIC packets that arrive on a node's
// QUIC UDP socket: it answers Binding requests (when serving) and hands
// Binding responses, and requests it waits for (hairpinning), to their
// transactions. quic-go queues non-QUIC packets for a single reader, so
// everything else that wants them must go through here.
type Socket struct {
	pc    net.PacketConn
	log   *slog.Logger
	serve *rate.Limiter // nil: do not answer requests

	mu      sync.Mutex
	waiting map[txID]chan<- arrival
	other   func(b []byte, from *net.UDPAddr) // packets that are not STUN

	served, dropped, refused atomic.Int64

	done chan struct{}
}

// arrival is a packet for a transaction someone waits for.
type arrival struct {
	pkt  packet
	from *net.UDPAddr
	at   time.Time
}

// SocketStats counts what a socket did with the packets it read.
type SocketStats struct {
	// Served are Binding requests answered; Refused those over the rate.
	Served  int64 `json:"served"`
	Refused int64 `json:"refused"`
	// Dropped are packets that were not ours: not STUN, malformed, or a
	// response nobody waited for.
	Dropped int64 `json:"dropped"`
}

// NewSocket starts reading pc; serve answers Binding requests at most at
// DefaultServeRate. Close stops the reader and closes pc.
func NewSocket(pc net.PacketConn, serve bool, log *slog.Logger) *Socket {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Socket{pc: pc, log: log, waiting: map[txID]chan<- arrival{}, done: make(chan struct{})}
	if serve {
		s.serve = rate.NewLimiter(DefaultServeRate, DefaultServeBurst)
	}
	go s.read()
	return s
}

// LocalAddr is the socket's local address.
func (s *Socket) LocalAddr() *net.UDPAddr {
	a, _ := s.pc.LocalAddr().(*net.UDPAddr)
	return a
}

// Stats counts what the socket did so far.
func (s *Socket) Stats() SocketStats {
	return SocketStats{Served: s.served.Load(), Refused: s.refused.Load(), Dropped: s.dropped.Load()}
}

// Close stops the reader and waits for it. It is safe more than once.
func (s *Socket) Close() error {
	err := s.pc.Close()
	<-s.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (s *Socket) read() {
	defer close(s.done)
	buf := make([]byte, MaxPacket+1)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			// Close, or the QUIC transport under it closed: either way
			// nothing more arrives.
			s.log.Debug("netcheck socket stopped", "err", err)
			return
		}
		udp, ok := from.(*net.UDPAddr)
		if !ok {
			s.dropped.Add(1)
			continue
		}
		s.handle(buf[:n], udp, time.Now())
	}
}

// handle dispatches one packet read from from at at.
func (s *Socket) handle(b []byte, from *net.UDPAddr, at time.Time) {
	pkt, err := decode(b)
	if errors.Is(err, errNotSTUN) {
		s.mu.Lock()
		other := s.other
		s.mu.Unlock()
		if other != nil {
			other(b, from)
			return
		}
	}
	if err != nil {
		s.dropped.Add(1)
		return
	}
	s.mu.Lock()
	ch := s.waiting[pkt.tx]
	s.mu.Unlock()
	if ch != nil {
		select {
		case ch <- arrival{pkt: pkt, from: from, at: at}:
		default: // the waiter has what it needs
		}
	}
	if !pkt.request || s.serve == nil {
		if ch == nil {
			s.dropped.Add(1)
		}
		return
	}
	if !s.serve.Allow() {
		s.refused.Add(1)
		return
	}
	resp, err := newResponse(pkt.tx, from)
	if err != nil {
		s.dropped.Add(1)
		return
	}
	if _, err := s.pc.WriteTo(resp, from); err != nil {
		s.log.Debug("netcheck: answer Binding request", "to", from, "err", err)
		return
	}
	s.served.Add(1)
}

// HandleOther hands every packet that is not STUN to fn, in the reader's
// goroutine: fn must not block, and b is valid only during the call.
// quic-go has one reader of non-QUIC packets per socket, so another user
// of the QUIC port (probes of its own) registers here; nil: drop them.
func (s *Socket) HandleOther(fn func(b []byte, from *net.UDPAddr)) {
	s.mu.Lock()
	s.other = fn
	s.mu.Unlock()
}

// WriteTo sends b from the QUIC socket. For the other side's QUIC socket
// to hand b to its own non-QUIC reader, b's first byte must have bits 0x40
// and 0x80 clear (quic-go's test); otherwise its QUIC takes it.
func (s *Socket) WriteTo(b []byte, to *net.UDPAddr) (int, error) { return s.pc.WriteTo(b, to) }

// expect registers tx; what arrives for it goes to ch until the returned
// func is called.
func (s *Socket) expect(tx txID, ch chan<- arrival) func() {
	s.mu.Lock()
	s.waiting[tx] = ch
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.waiting, tx)
		s.mu.Unlock()
	}
}

// send sends a new Binding request to to, registered to ch; it returns the
// transaction's forget func and when it was sent.
func (s *Socket) send(to *net.UDPAddr, ch chan<- arrival) (func(), time.Time, error) {
	req, tx, err := newRequest()
	if err != nil {
		return nil, time.Time{}, err
	}
	forget := s.expect(tx, ch)
	sent := time.Now()
	if _, err := s.pc.WriteTo(req, to); err != nil {
		forget()
		return nil, time.Time{}, fmt.Errorf("send Binding request to %s: %w", to, err)
	}
	return forget, sent, nil
}

// SelfTest sends Binding requests from the socket to its own port over
// loopback (or its own address), one every selfTestGap, until the socket
// reads one. It fails when go-libp2p no longer hands non-QUIC packets of
// the QUIC socket to this reader: netcheck would then see nothing. (quic-go
// drops non-QUIC packets until the reader's first read: hence the repeats.)
func (s *Socket) SelfTest(ctx context.Context) error {
	self := s.LocalAddr()
	if self == nil {
		return errors.New("netcheck self-test: socket has no UDP address")
	}
	to := &net.UDPAddr{IP: self.IP, Port: self.Port}
	if to.IP.IsUnspecified() {
		to.IP = net.IPv4(127, 0, 0, 1)
		if self.IP.To4() == nil {
			to.IP = net.IPv6loopback
		}
	}
	ch := make(chan arrival, 4)
	tick := time.NewTicker(selfTestGap)
	defer tick.Stop()
	for {
		forget, _, err := s.send(to, ch)
		if err != nil {
			return fmt.Errorf("netcheck self-test: %w", err)
		}
		defer forget()
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("netcheck self-test: no packet sent to %s reached the shared QUIC socket's reader: %w", to, ctx.Err())
		case <-tick.C:
		}
	}
}

// selfTestGap is the time between two packets of SelfTest.
const selfTestGap = 100 * time.Millisecond
