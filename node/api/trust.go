package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node/trust"
)

// TrustPublishRequest hands the node a signed revocation list or policy, as
// 'overlay ca' wrote it (PEM) or raw; JSON carries it as base64.
type TrustPublishRequest struct {
	Document []byte `json:"document"`
}

// PublishResult is what the node did with a published document.
type PublishResult struct {
	Kind    string `json:"kind"`
	Version uint64 `json:"version"`
	// Changed is true when the node took it as its newest: it spreads it
	// to every member it holds and enforces it.
	Changed bool `json:"changed"`
}

// TrustReply is the answer of GET /v1/trust.
type TrustReply struct {
	Enabled bool `json:"enabled"` // false: the node has no --ca-pub
	trust.Status
}

func (s *Server) trustRoutes() {
	s.mux.HandleFunc("GET /v1/trust", func(w http.ResponseWriter, r *http.Request) {
		reply := TrustReply{Enabled: s.n.Trust() != nil}
		if reply.Enabled {
			reply.Status = s.n.Trust().Status()
		}
		WriteJSON(w, http.StatusOK, reply)
	})
	s.mux.HandleFunc("POST /v1/trust/publish", s.publishTrust)
}

func (s *Server) publishTrust(w http.ResponseWriter, r *http.Request) {
	var req TrustPublishRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	kind, doc, err := cert.Decode(req.Document)
	if err != nil {
		WriteError(w, http.StatusBadRequest, fmt.Errorf("publish: %w", err))
		return
	}
	res := PublishResult{Kind: cert.KindName(kind)}
	switch kind {
	case cert.KindRevocations:
		if l, err := cert.ParseRevocations(doc); err == nil {
			res.Version = l.Version
		}
	case cert.KindPolicy:
		if p, err := cert.ParsePolicy(doc); err == nil {
			res.Version = p.Version
		}
	}
	res.Changed, err = s.n.Trust().Offer(kind, doc)
	switch {
	case err == nil:
		WriteJSON(w, http.StatusOK, res)
	case errors.Is(err, trust.ErrNoCA):
		WriteError(w, http.StatusPreconditionFailed, err)
	case errors.Is(err, trust.ErrStale), errors.Is(err, trust.ErrRollback):
		WriteError(w, http.StatusConflict, fmt.Errorf("publish: %w", err))
	default:
		WriteError(w, http.StatusBadRequest, fmt.Errorf("publish: %s refused (%s): %w", res.Kind, cert.ReasonOf(err), err))
	}
}

// Publish hands the node a signed revocation list or policy (PEM or raw).
func (c *Client) Publish(ctx context.Context, doc []byte) (PublishResult, error) {
	var out PublishResult
	err := c.Do(ctx, http.MethodPost, "/v1/trust/publish", TrustPublishRequest{Document: doc}, &out)
	return out, err
}

// Trust returns what the node's trust store holds.
func (c *Client) Trust(ctx context.Context) (TrustReply, error) {
	var out TrustReply
	err := c.Do(ctx, http.MethodGet, "/v1/trust", nil, &out)
	return out, err
}
