package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node/tunnel"
)

// ExposeRequest exposes a local TCP service to members.
type ExposeRequest struct {
	Name   string   `json:"name"`
	Target string   `json:"target"`          // HOST:PORT
	Allow  []string `json:"allow,omitempty"` // peer IDs; none: every member
	// Replace replaces a service of the same name; without it, exposing
	// a name already exposed is refused (409).
	Replace bool `json:"replace,omitempty"`
}

// ExposeResult is the service as exposed, and whether it replaced one.
type ExposeResult struct {
	tunnel.Exposure
	Replaced bool `json:"replaced,omitempty"`
}

// ForwardRequest forwards a local address to a member's service.
type ForwardRequest struct {
	Listen  string `json:"listen"` // HOST:PORT or PORT (loopback)
	Peer    string `json:"peer"`
	Service string `json:"service"`
}

func (s *Server) tunnelRoutes() {
	s.mux.HandleFunc("GET /v1/expose", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, s.n.Tunnels().Exposures())
	})
	s.mux.HandleFunc("POST /v1/expose", s.expose)
	s.mux.HandleFunc("DELETE /v1/expose/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.n.Tunnels().Unexpose(r.PathValue("name")); err != nil {
			WriteError(w, tunnelStatus(err), err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("GET /v1/forward", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, s.n.Tunnels().Forwards())
	})
	s.mux.HandleFunc("POST /v1/forward", s.forward)
	s.mux.HandleFunc("DELETE /v1/forward", func(w http.ResponseWriter, r *http.Request) {
		if err := s.n.Tunnels().Unforward(r.URL.Query().Get("listen")); err != nil {
			WriteError(w, http.StatusNotFound, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func (s *Server) expose(w http.ResponseWriter, r *http.Request) {
	var req ExposeRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	e := tunnel.Exposure{Name: req.Name, Target: req.Target}
	for _, a := range req.Allow {
		id, err := peer.Decode(a)
		if err != nil {
			WriteError(w, http.StatusBadRequest, fmt.Errorf("bad peer ID %q in allow: %w", a, err))
			return
		}
		e.Allow = append(e.Allow, id)
	}
	replaced, err := s.n.Tunnels().Expose(e, req.Replace)
	if err != nil {
		WriteError(w, tunnelStatus(err), err)
		return
	}
	s.log.Info("service exposed", "name", e.Name, "target", e.Target, "allow", len(e.Allow), "replaced", replaced)
	e.Source = tunnel.SourceRuntime
	WriteJSON(w, http.StatusOK, ExposeResult{Exposure: e, Replaced: replaced})
}

func (s *Server) forward(w http.ResponseWriter, r *http.Request) {
	var req ForwardRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	id, err := s.n.ResolvePeer(req.Peer)
	if err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	f, err := s.n.Tunnels().Forward(req.Listen, id, req.Service)
	if err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	WriteJSON(w, http.StatusOK, f)
}

func tunnelStatus(err error) int {
	switch {
	case errors.Is(err, tunnel.ErrUnknownService):
		return http.StatusNotFound
	case errors.Is(err, tunnel.ErrExists):
		return http.StatusConflict
	}
	return http.StatusBadRequest
}

// Expose exposes a local TCP service to members.
func (c *Client) Expose(ctx context.Context, req ExposeRequest) (ExposeResult, error) {
	var e ExposeResult
	return e, c.Do(ctx, http.MethodPost, "/v1/expose", req, &e)
}

// Unexpose stops exposing the service name.
func (c *Client) Unexpose(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/expose/"+url.PathEscape(name), nil, nil)
}

// Exposures lists the exposed services.
func (c *Client) Exposures(ctx context.Context) ([]tunnel.Exposure, error) {
	var es []tunnel.Exposure
	return es, c.Do(ctx, http.MethodGet, "/v1/expose", nil, &es)
}

// Forward makes the node listen on req.Listen and carry each connection to
// a member's service.
func (c *Client) Forward(ctx context.Context, req ForwardRequest) (tunnel.Forward, error) {
	var f tunnel.Forward
	return f, c.Do(ctx, http.MethodPost, "/v1/forward", req, &f)
}

// Unforward stops the forward listening on listen.
func (c *Client) Unforward(ctx context.Context, listen string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/forward?listen="+url.QueryEscape(listen), nil, nil)
}

// Forwards lists the forwards.
func (c *Client) Forwards(ctx context.Context) ([]tunnel.Forward, error) {
	var fs []tunnel.Forward
	return fs, c.Do(ctx, http.MethodGet, "/v1/forward", nil, &fs)
}
