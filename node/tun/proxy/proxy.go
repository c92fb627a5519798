// Package proxy offers the overlay to programs that cannot use an
// interface: a SOCKS5 server (CONNECT, no authentication, names resolved
// through the overlay's, as with curl --socks5-hostname) and an HTTP proxy
// (CONNECT tunnels, and plain http:// requests forwarded). Both dial
// through a DialContext, the userspace stack's in userspace mode.
//
// Only overlay destinations are reachable: a name must be under .overlay,
// and the dialer routes every address into the overlay. There is no
// authentication, so listen on loopback (the default the daemon uses).
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Defaults of the servers.
const (
	// HandshakeTimeout bounds a client's SOCKS5 greeting and request, or
	// an HTTP request's header.
	HandshakeTimeout = 10 * time.Second
	// DialTimeout bounds a connection to a member. A non-member address
	// fails fast (ICMP unreachable); a member that does not answer takes
	// TCP's retries, cut here.
	DialTimeout = 30 * time.Second
)

// ErrNotOverlay means a name is not under .overlay or no member has it.
var ErrNotOverlay = errors.New("not an overlay member")

// Config is what the servers need.
type Config struct {
	// Dial connects to an IP literal and port ("tcp", "100.64.1.2:22").
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Resolve maps a host name to a member's addresses (dns.Resolve
	// with the engine's lookup); ok is false for anything else.
	Resolve func(host string) (v4, v6 netip.Addr, ok bool)
	Logger  *slog.Logger
}

// Server runs the SOCKS5 and HTTP proxies on the listeners it is given and
// owns every connection they accept. Close stops it all.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // cancelled by Close: stops dials in flight
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	closers   []io.Closer
	wg        sync.WaitGroup
}

// New returns a server serving nothing until ServeSOCKS5, ServeHTTPProxy or ServeForward.
func New(cfg Config) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, log: log, ctx: ctx, cancel: cancel,
		listeners: map[net.Listener]struct{}{}, conns: map[net.Conn]struct{}{}}
}

// Close closes the listeners and every proxied connection, and waits for
// the goroutines serving them. It is idempotent.
func (s *Server) Close() error {
	s.cancel()
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	closers := s.closers
	s.closers = nil
	s.mu.Unlock()
	for _, c := range closers {
		c.Close()
	}
	s.wg.Wait()
	return nil
}

// track records c so that Close closes it; it returns false (and closes
// c) once the server is closed.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// enter adds the caller to the goroutines Close waits for, unless the
// server is closed; the caller then calls s.wg.Done when it returns.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// goServe runs fn in a goroutine that Close waits for, unless closed.
func (s *Server) goServe(fn func()) bool {
	if !s.enter() {
		return false
	}
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

// acceptLoop accepts on l until it is closed and serves each connection
// with handle in its own goroutine; the connection is closed afterwards.
func (s *Server) acceptLoop(l net.Listener, handle func(net.Conn)) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("proxy: server closed")
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	s.goServe(func() {
		defer func() {
			s.mu.Lock()
			delete(s.listeners, l)
			s.mu.Unlock()
			l.Close()
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				return
			}
			if !s.track(c) {
				return
			}
			if !s.goServe(func() { defer s.untrack(c); handle(c) }) {
				s.untrack(c)
				return
			}
		}
	})
	return nil
}

// dial resolves host (an IP literal or a name under .overlay) and
// connects to it through the configured dialer, IPv4 first.
func (s *Server) dial(ctx context.Context, host string, port uint16) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip.Unmap()}
	} else {
		v4, v6, ok := s.cfg.Resolve(host)
		if !ok {
			return nil, fmt.Errorf("resolve %q: %w", host, ErrNotOverlay)
		}
		for _, a := range []netip.Addr{v4, v6} {
			if a.IsValid() {
				addrs = append(addrs, a)
			}
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("resolve %q: %w", host, ErrNotOverlay)
		}
	}
	var errs []error
	for _, a := range addrs {
		c, err := s.cfg.Dial(ctx, "tcp", net.JoinHostPort(a.String(), strconv.Itoa(int(port))))
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("dial %s: %w", a, err))
	}
	return nil, errors.Join(errs...)
}

// pipe copies between a and b both ways, passing a half-close on, until
// both directions are done.
func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		if _, err := io.Copy(dst, src); err != nil {
			a.Close() // a reset or a failed write ends both directions
			b.Close()
			return
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Add(2)
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
}

// ServeForward accepts connections on l (inside the userspace stack: a
// member connecting to this node) and carries each to the first of
// targets (host addresses, such as 127.0.0.1:22) that accepts, until
// Close. It returns at once.
func (s *Server) ServeForward(l net.Listener, targets ...string) error {
	return s.acceptLoop(l, func(c net.Conn) {
		ctx, cancel := context.WithTimeout(s.ctx, DialTimeout)
		defer cancel()
		var d net.Dialer
		var errs []error
		for _, t := range targets {
			target, err := d.DialContext(ctx, "tcp", t)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !s.track(target) {
				return
			}
			defer s.untrack(target)
			pipe(c, target)
			return
		}
		s.log.Debug("forward: no target accepts", "from", c.RemoteAddr(), "err", errors.Join(errs...))
	})
}
