package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/messaging"
	"github.com/overlay-net/overlay/protocol"

	"github.com/overlay-net/overlay/node"
)

// Client talks to a node's control API.
type Client struct {
	http  *http.Client
	token string // sent as a bearer token when set

	mu   sync.Mutex
	base string // "" until found (NewClient(""))
}

// NewClient returns a client for the API at addr (host:port); with addr ""
// it finds the node at the default addresses on first use (FindDefault).
func NewClient(addr string) *Client {
	c := &Client{http: &http.Client{}}
	if addr != "" {
		c.base = "http://" + addr
	}
	return c
}

// WithToken makes the client send token with every request (the node's
// --api-token) and returns the client.
func (c *Client) WithToken(token string) *Client {
	c.token = token
	return c
}

// baseURL returns the API's URL, finding the node first if need be.
func (c *Client) baseURL(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.base != "" {
		return c.base, nil
	}
	addr, err := findDefault(ctx, c.token)
	if err != nil {
		return "", err
	}
	c.base = "http://" + addr
	return c.base, nil
}

// Addr returns the API address the client talks to, "" before it found one.
func (c *Client) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.TrimPrefix(c.base, "http://")
}

// APIError is an error the node answered with.
type APIError struct {
	Code    int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// ErrUnreachable means no node answered at the API address.
var ErrUnreachable = errors.New("no node answers at the control API address")

// Do sends a request and decodes the JSON answer into out.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := encode(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	base, err := c.baseURL(ctx)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("%w (%s): %v", ErrUnreachable, base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			return &APIError{Code: resp.StatusCode, Message: eb.Error}
		}
		return &APIError{Code: resp.StatusCode, Message: fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(data))}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
	}
	return nil
}

// Status asks for the node's status.
func (c *Client) Status(ctx context.Context) (node.Status, error) {
	var s node.Status
	return s, c.Do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Peers lists the node's peer book, with why relayed members are relayed.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var ps []Peer
	return ps, c.Do(ctx, http.MethodGet, "/v1/peers", nil, &ps)
}

// Connect asks the node to reach target and returns the peer as booked.
func (c *Client) Connect(ctx context.Context, target string, timeout time.Duration) (book.PeerInfo, error) {
	var p book.PeerInfo
	return p, c.Do(ctx, http.MethodPost, "/v1/connect", ConnectRequest{Target: target, Timeout: timeout.String()}, &p)
}

// Health asks whether the node does its job.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	return h, c.Do(ctx, http.MethodGet, "/v1/health", nil, &h)
}

// Send sends one message and returns its round-trip time.
func (c *Client) Send(ctx context.Context, peerID string, data []byte, timeout time.Duration) (time.Duration, error) {
	// The node would refuse it: no need to carry it there first.
	if len(data) > protocol.MaxMessageSize {
		return 0, &APIError{Code: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("%v (%d bytes)", protocol.ErrTooLarge, len(data))}
	}
	req := SendRequest{Peer: peerID, Timeout: timeout.String()}
	if isText(data) {
		req.Data = string(data)
	} else {
		req.DataBase64 = base64.StdEncoding.EncodeToString(data)
	}
	// Text whose escapes would take it over the body cap goes as base64.
	if b, err := encode(req); err == nil && len(b) > MaxBody {
		req.Data, req.DataBase64 = "", base64.StdEncoding.EncodeToString(data)
	}
	var res SendResult
	err := c.Do(ctx, http.MethodPost, "/v1/send", req, &res)
	return res.RTT, err
}

// Inbox returns up to limit recent messages (0: all kept).
func (c *Client) Inbox(ctx context.Context, limit int) ([]messaging.Message, error) {
	var msgs []messaging.Message
	return msgs, c.Do(ctx, http.MethodGet, fmt.Sprintf("/v1/inbox?limit=%d", limit), nil, &msgs)
}

// Ping pings target count times.
func (c *Client) Ping(ctx context.Context, req PingRequest) (PingResult, error) {
	var res PingResult
	return res, c.Do(ctx, http.MethodPost, "/v1/ping", req, &res)
}

// Perf runs the perf protocol from the node to target.
func (c *Client) Perf(ctx context.Context, req PerfRequest) (protocol.PerfResult, error) {
	var res protocol.PerfResult
	return res, c.Do(ctx, http.MethodPost, "/v1/perf", req, &res)
}

// Runtime reports the node process's goroutines and heap.
func (c *Client) Runtime(ctx context.Context) (Runtime, error) {
	var rt Runtime
	return rt, c.Do(ctx, http.MethodGet, "/v1/runtime", nil, &rt)
}

// RuntimeAfterGC is Runtime after a garbage collection in the node: live
// memory only.
func (c *Client) RuntimeAfterGC(ctx context.Context) (Runtime, error) {
	var rt Runtime
	return rt, c.Do(ctx, http.MethodGet, "/v1/runtime?gc=1", nil, &rt)
}

// isText reports whether data travels well as a JSON string; other bytes go
// as base64, which grows them by a third rather than up to six times.
func isText(data []byte) bool {
	if !utf8.Valid(data) {
		return false
	}
	for _, c := range data {
		if c < 0x20 && c != '\n' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// encode is json.Marshal without HTML escaping: <, > and & as \u003c and so
// on would grow a message of them sixfold.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ErrAmbiguous means more than one node answers at the default addresses.
var ErrAmbiguous = errors.New("more than one node answers")

// FindDefault returns the one default address (DefaultAddrs) where a node
// answers: a relay and a peer on one host each have their own, and a client
// told neither finds whichever runs. When both answer it does not guess.
func FindDefault(ctx context.Context) (string, error) { return findDefault(ctx, "") }

func findDefault(ctx context.Context, token string) (string, error) {
	var found []string
	for _, addr := range DefaultAddrs {
		var h Health
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := NewClient(addr).WithToken(token).Do(actx, http.MethodGet, "/v1/health", nil, &h)
		cancel()
		// A node that wants another token still answers: it is found, and
		// the request made with it says what is wrong.
		var ae *APIError
		if err == nil || errors.As(err, &ae) && ae.Code == http.StatusUnauthorized {
			found = append(found, addr)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%w at %s (relay) or %s (peer); is the node running? --api or $OVERLAY_API name another address",
			ErrUnreachable, DefaultRelayAddr, DefaultPeerAddr)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%w: a relay at %s and a peer at %s; choose one with --api or $OVERLAY_API",
		ErrAmbiguous, found[0], found[1])
}
