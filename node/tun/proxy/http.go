package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"
)

// Limits of the HTTP proxy; net/http parses the requests, under these.
const (
	// MaxHeaderBytes caps a request's header.
	MaxHeaderBytes = 16 << 10
	// IdleTimeout closes a client's keep-alive connection left idle.
	IdleTimeout = 90 * time.Second
)

// ServeHTTPProxy serves the HTTP proxy on l until Close: CONNECT host:port opens
// a tunnel, and a request for an absolute http:// URL is forwarded. It
// returns at once.
func (s *Server) ServeHTTPProxy(l net.Listener) error {
	tr := &http.Transport{
		DialContext:           s.dialHostPort,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       IdleTimeout,
		ResponseHeaderTimeout: DialTimeout,
		Proxy:                 nil, // never another proxy
	}
	fwd := &httputil.ReverseProxy{
		Rewrite:   func(*httputil.ProxyRequest) {}, // the URL is absolute already
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Debug("http proxy: forward", "url", r.URL.Redacted(), "err", err)
			http.Error(w, err.Error(), statusFor(err))
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.handleHTTP(w, r, fwd) }),
		ReadHeaderTimeout: HandshakeTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		IdleTimeout:       IdleTimeout,
		ErrorLog:          log.New(io.Discard, "", 0),
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("proxy: server closed")
	}
	s.closers = append(s.closers, srv, closerFunc(tr.CloseIdleConnections))
	s.mu.Unlock()
	if !s.goServe(func() { srv.Serve(l) }) {
		l.Close()
		return errors.New("proxy: server closed")
	}
	return nil
}

type closerFunc func()

func (f closerFunc) Close() error { f(); return nil }

// dialHostPort is the dial of the forwarding transport.
func (s *Server) dialHostPort(ctx context.Context, _, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("port %q: %w", port, err)
	}
	return s.dial(ctx, host, uint16(p))
}

func (s *Server) handleHTTP(w http.ResponseWriter, r *http.Request, fwd http.Handler) {
	// Close waits for every handler: join its wait group unless closed.
	if !s.enter() {
		http.Error(w, "proxy closing", http.StatusServiceUnavailable)
		return
	}
	defer s.wg.Done()
	switch {
	case r.Method == http.MethodConnect:
		s.connect(w, r)
	case r.URL.IsAbs() && r.URL.Scheme == "http":
		fwd.ServeHTTP(w, r)
	default:
		http.Error(w, "this is a proxy: CONNECT host:port, or an absolute http:// URL", http.StatusBadRequest)
	}
}

// connect opens a tunnel to r.Host and hands the client's connection to it.
func (s *Server) connect(w http.ResponseWriter, r *http.Request) {
	target, err := s.dialHostPort(r.Context(), "tcp", r.Host)
	if err != nil {
		s.log.Debug("http proxy: connect", "to", r.Host, "err", err)
		http.Error(w, err.Error(), statusFor(err))
		return
	}
	if !s.track(target) {
		return
	}
	defer s.untrack(target)
	rc := http.NewResponseController(w)
	c, buf, err := rc.Hijack()
	if err != nil {
		http.Error(w, "cannot hijack: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if !s.track(c) {
		return
	}
	defer s.untrack(c)
	c.SetDeadline(time.Now().Add(HandshakeTimeout))
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	// Bytes the client sent after its request, already read into buf.
	if n := buf.Reader.Buffered(); n > 0 {
		b, _ := buf.Reader.Peek(n)
		if _, err := target.Write(b); err != nil {
			return
		}
	}
	c.SetDeadline(time.Time{})
	pipe(c, target)
}

// statusFor maps a dial error to an HTTP status.
func statusFor(err error) int {
	var ne net.Error
	switch {
	case errors.Is(err, ErrNotOverlay):
		return http.StatusBadGateway
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}
