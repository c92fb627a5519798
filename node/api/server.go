// Package api is the node's control API: JSON over HTTP on a loopback
// address, and the client the overlay commands use to talk to it.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/messaging"
)

// Where the control API listens unless told otherwise: loopback, as the API
// can make the node dial anyone, so it is not for the network. A relay and a
// peer have their own, so both run on one host without flags.
const (
	DefaultRelayAddr = "127.0.0.1:7400"
	DefaultPeerAddr  = "127.0.0.1:7401"
)

// DefaultAddrs are the addresses clients try when told none, relay first.
var DefaultAddrs = []string{DefaultRelayAddr, DefaultPeerAddr}

// Server serves the control API of one node.
type Server struct {
	n     *node.Node
	log   *slog.Logger
	token []byte
	mux   *http.ServeMux
	srv   *http.Server
	ln    net.Listener
	done  chan struct{}
	// closing is done once Close starts: long-lived streams end.
	closing     context.Context
	stopStreams context.CancelFunc
}

// Option configures a Server.
type Option func(*Server)

// WithToken makes every request (but the static status page) carry
// "Authorization: Bearer <token>". Required when the API listens beyond
// loopback.
func WithToken(token string) Option {
	return func(s *Server) { s.token = []byte(token) }
}

// Listen binds addr and starts serving in the background. An address that
// is not loopback is refused with ErrNeedToken unless WithToken gives one.
func Listen(addr string, n *node.Node, log *slog.Logger, opts ...Option) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{n: n, log: log, mux: http.NewServeMux(), done: make(chan struct{})}
	s.closing, s.stopStreams = context.WithCancel(context.Background())
	for _, o := range opts {
		o(s)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for control API on %s: %w", addr, err)
	}
	tcp, _ := ln.Addr().(*net.TCPAddr)
	if tcp == nil {
		ln.Close()
		return nil, fmt.Errorf("control API on %s: not a TCP address", addr)
	}
	if !tcp.IP.IsLoopback() && len(s.token) == 0 {
		ln.Close()
		return nil, fmt.Errorf("control API on %s: %w", addr, ErrNeedToken)
	}
	s.ln = ln
	s.routes()
	s.srv = &http.Server{Handler: newGuard(tcp, s.token, log).wrap(s.mux), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, MaxHeaderBytes: 64 << 10}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("control API stopped", "err", err)
		}
	}()
	return s, nil
}

// Loopback reports whether the API listens on a loopback address only.
func (s *Server) Loopback() bool {
	tcp, _ := s.ln.Addr().(*net.TCPAddr)
	return tcp != nil && tcp.IP.IsLoopback()
}

// Addr returns the address the API listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Handle adds a route, for services that embed the node.
func (s *Server) Handle(pattern string, h http.HandlerFunc) { s.mux.HandleFunc(pattern, h) }

// Close stops the server and waits for it.
func (s *Server) Close() error {
	s.stopStreams()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /{$}", serveStatusPage)
	s.mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, StatusReply{Status: s.n.Status(), ListenFailed: s.n.ListenFailures()})
	})
	s.mux.HandleFunc("GET /v1/peers", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, peers(s.n))
	})
	s.mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		ok, why := s.n.Healthy()
		warn := append(s.n.ListenFailures(), s.n.Certs().Warnings()...)
		WriteJSON(w, http.StatusOK, Health{OK: ok, Reason: why, Warnings: warn})
	})
	s.mux.HandleFunc("POST /v1/connect", s.connect)
	if h := MetricsHandler(s.n); h != nil {
		s.mux.Handle("GET /metrics", h)
	}
	s.messageRoutes()
	s.tunnelRoutes()
	s.netcheckRoutes()
	s.trustRoutes()
	s.topicRoutes()
}

// Health is the answer of /v1/health. Warnings are what runs degraded
// without making the node unhealthy: listen addresses that did not bind
// under --listen-best-effort, a certificate about to expire or a renewed
// one that could not be used.
type Health struct {
	OK       bool     `json:"ok"`
	Reason   string   `json:"reason"`
	Warnings []string `json:"warnings,omitempty"`
}

// StatusReply is the answer of /v1/status: the node's status, and the
// listen addresses that did not bind (only under --listen-best-effort).
type StatusReply struct {
	node.Status
	ListenFailed []string `json:"listen_failed,omitempty"`
}

// ConnectRequest asks the node to reach a peer.
type ConnectRequest struct {
	Target  string `json:"target"`
	Timeout string `json:"timeout,omitempty"` // Go duration; default 30s
}

func (s *Server) connect(w http.ResponseWriter, r *http.Request) {
	var req ConnectRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	ctx, cancel, ok := RequestContext(w, r, req.Timeout, 30*time.Second)
	if !ok {
		return
	}
	defer cancel()
	info, err := s.n.Connect(ctx, req.Target)
	if err != nil {
		WriteError(w, StatusFor(err), err)
		return
	}
	WriteJSON(w, http.StatusOK, info)
}

// StatusFor maps a node error to an HTTP status.
func StatusFor(err error) int {
	switch {
	case errors.Is(err, node.ErrRejected), errors.Is(err, node.ErrForeign):
		return http.StatusForbidden
	case errors.Is(err, node.ErrSelf), errors.Is(err, messaging.ErrSelf):
		return http.StatusBadRequest
	case errors.Is(err, node.ErrNoAddress):
		return http.StatusNotFound
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// RequestContext bounds a request by the timeout it asks for, or def.
func RequestContext(w http.ResponseWriter, r *http.Request, timeout string, def time.Duration) (context.Context, context.CancelFunc, bool) {
	d := def
	if timeout != "" {
		var err error
		if d, err = time.ParseDuration(timeout); err != nil || d <= 0 {
			WriteError(w, http.StatusBadRequest, fmt.Errorf("bad timeout %q", timeout))
			return nil, nil, false
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	return ctx, cancel, true
}

// ReadJSON decodes a request body holding one JSON value and nothing after
// it; on failure it answers 400 (413 when the body is over MaxBody, 503 when
// too many bodies are being read already).
func ReadJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if sem, ok := r.Context().Value(bodySemKey{}).(chan struct{}); ok {
		if !acquire(r.Context(), sem) {
			WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("busy: %d request bodies already being read; try again", maxBodies))
			return false
		}
		defer func() { <-sem }()
	}
	dec := json.NewDecoder(r.Body)
	err := dec.Decode(v)
	if err == nil {
		// A second value, or garbage, after the first is a malformed
		// request, not something to ignore.
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON value")
			if terr != nil && !isSyntax(terr) {
				err = terr
			}
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return true
	case errors.As(err, &tooBig):
		WriteError(w, http.StatusRequestEntityTooLarge, errTooLarge)
	case errors.Is(err, io.EOF):
		WriteError(w, http.StatusBadRequest, errors.New("decode request: empty body; send a JSON object"))
	default:
		WriteError(w, http.StatusBadRequest, fmt.Errorf("decode request: %w", err))
	}
	return false
}

func isSyntax(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se)
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// ErrorBody is the JSON of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
}

// WriteError answers with err's text.
func WriteError(w http.ResponseWriter, code int, err error) {
	WriteJSON(w, code, ErrorBody{Error: err.Error()})
}
