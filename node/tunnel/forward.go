package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node/messaging"
	"github.com/overlay-net/overlay/protocol"
)

// Forward is a local port carried to a member's service, as listed.
type Forward struct {
	Listen  string  `json:"listen"` // the bound address
	Peer    peer.ID `json:"peer"`
	Service string  `json:"service"`
	// Open is how many tunnels carry bytes now; Total how many were
	// accepted, Failed how many were refused or could not be set up.
	Open      int64  `json:"open"`
	Total     int64  `json:"total"`
	Failed    int64  `json:"failed"`
	LastError string `json:"last_error,omitempty"`
}

type forward struct {
	ln                  net.Listener
	listen, service     string
	peer                peer.ID
	open, total, failed atomic.Int64
	mu                  sync.Mutex
	lastErr             string
}

func (f *forward) info() Forward {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Forward{Listen: f.listen, Peer: f.peer, Service: f.service, Open: f.open.Load(),
		Total: f.total.Load(), Failed: f.failed.Load(), LastError: f.lastErr}
}

// LocalAddr completes a listen address: a bare port, or one with no host,
// listens on loopback, so that a forward is not open to the network unless
// asked for by address.
func LocalAddr(s string) string {
	if !strings.Contains(s, ":") {
		return net.JoinHostPort("127.0.0.1", s)
	}
	if host, port, err := net.SplitHostPort(s); err == nil && host == "" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return s
}

// Forward listens on listen (see LocalAddr) and carries each accepted TCP
// connection to the service name of member to.
func (s *Service) Forward(listen string, to peer.ID, name string) (Forward, error) {
	if err := protocol.ValidServiceName(name); err != nil {
		return Forward{}, err
	}
	if err := to.Validate(); err != nil {
		return Forward{}, fmt.Errorf("forward to %q: %w", to, err)
	}
	ln, err := net.Listen("tcp", LocalAddr(listen))
	if err != nil {
		return Forward{}, fmt.Errorf("forward: listen: %w", err)
	}
	f := &forward{ln: ln, listen: ln.Addr().String(), peer: to, service: name}
	s.mu.Lock()
	s.forwards[f.listen] = f
	s.mu.Unlock()
	if !s.goRun(func() { s.accept(f) }) {
		ln.Close()
		return Forward{}, ErrClosed
	}
	s.log.Info("forwarding", "listen", f.listen, "peer", to, "service", name)
	return f.info(), nil
}

// Unforward closes the listener at addr (as given to Forward or as bound:
// 0.0.0.0:P finds the forward bound as [::]:P); tunnels it opened stay
// until they end.
func (s *Service) Unforward(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.forwards[addr]
	if !ok {
		want := LocalAddr(addr)
		for _, g := range s.forwards {
			if sameListen(g.listen, want) {
				f, ok = g, true
				break
			}
		}
	}
	if !ok {
		return fmt.Errorf("no forward listens on %s", addr)
	}
	delete(s.forwards, f.listen)
	f.ln.Close()
	return nil
}

// sameListen reports whether two HOST:PORT listen addresses are one: the
// same port, and the same IP, or both the unspecified address (Go binds
// 0.0.0.0 as the dual-stack [::]).
func sameListen(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	if ha == hb {
		return true
	}
	ia, err1 := netip.ParseAddr(ha)
	ib, err2 := netip.ParseAddr(hb)
	if err1 != nil || err2 != nil {
		return false
	}
	ia, ib = ia.Unmap(), ib.Unmap()
	return ia == ib || ia.IsUnspecified() && ib.IsUnspecified()
}

// Forwards lists the forwards, by listen address.
func (s *Service) Forwards() []Forward {
	s.mu.Lock()
	out := make([]Forward, 0, len(s.forwards))
	for _, f := range s.forwards {
		out = append(out, f.info())
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Forward) int { return strings.Compare(a.Listen, b.Listen) })
	return out
}

func (s *Service) accept(f *forward) {
	wait := 5 * time.Millisecond
	for {
		c, err := f.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of file descriptors, say: wait rather than spin.
			s.log.Warn("forward: accept", "listen", f.listen, "err", err)
			select {
			case <-time.After(wait):
			case <-s.ctx.Done():
				return
			}
			wait = min(2*wait, time.Second)
			continue
		}
		wait = 5 * time.Millisecond
		f.total.Add(1)
		if !s.goRun(func() { s.forwardConn(f, c.(tcpConn)) }) {
			c.Close()
			return
		}
	}
}

// forwardConn sets up one tunnel for the accepted c and carries it. A
// tunnel that cannot be set up is one log line naming the reason, and c is
// reset.
func (s *Service) forwardConn(f *forward, c tcpConn) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.SetupTimeout)
	start := time.Now()
	st, err := s.Dial(ctx, f.peer, f.service)
	cancel()
	if err != nil {
		f.failed.Add(1)
		f.mu.Lock()
		f.lastErr = err.Error()
		f.mu.Unlock()
		if s.ctx.Err() == nil {
			s.logs.warn(s.log, "tunnel not opened", "listen", f.listen, "peer", f.peer, "service", f.service,
				"reason", Reason(err), "err", err)
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
		return
	}
	s.log.Debug("tunnel open", "listen", f.listen, "peer", f.peer, "service", f.service, "setup", time.Since(start))
	f.open.Add(1)
	up, down, err := s.carry(c, st, f.peer, "")
	f.open.Add(-1)
	switch {
	case err != nil && s.ctx.Err() == nil:
		s.logs.info(s.log, "tunnel cut", "listen", f.listen, "peer", f.peer, "service", f.service,
			"sent", up, "received", down, "err", err)
	default:
		s.log.Debug("tunnel closed", "listen", f.listen, "peer", f.peer, "service", f.service,
			"sent", up, "received", down)
	}
}

// Reason names why a tunnel was not opened, in a word or two for logs and
// lists: the serving member's refusal, or why it could not be reached.
func Reason(err error) string {
	var r *Refused
	switch {
	case errors.As(err, &r):
		return r.Code.String()
	case errors.Is(err, messaging.ErrNotMember):
		return "not a member"
	case errors.Is(err, messaging.ErrUnknownPeer):
		return "unknown peer"
	case errors.Is(err, messaging.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, ErrClosed):
		return "closed"
	}
	return "unreachable"
}
