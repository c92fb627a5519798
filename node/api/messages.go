package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/overlay-net/overlay/node/messaging"
	"github.com/overlay-net/overlay/protocol"
)

// SendRequest sends one message. Data is text; DataBase64, if set, wins.
type SendRequest struct {
	Peer       string `json:"peer"`
	Data       string `json:"data"`
	DataBase64 string `json:"data_base64,omitempty"`
	Timeout    string `json:"timeout,omitempty"`
}

// SendResult is the acknowledgement of one message.
type SendResult struct {
	RTT time.Duration `json:"rtt_ns"`
}

// PingRequest asks for count pings, interval apart.
type PingRequest struct {
	Target   string `json:"target"`
	Count    int    `json:"count"`
	Interval string `json:"interval,omitempty"`
	Timeout  string `json:"timeout,omitempty"`
}

// PingResult holds each round-trip time, and the error that stopped early.
type PingResult struct {
	RTTs  []time.Duration `json:"rtts_ns"`
	Error string          `json:"error,omitempty"`
}

// PerfRequest runs the perf protocol.
type PerfRequest struct {
	Target   string `json:"target"`
	Upload   uint64 `json:"upload_bytes"`
	Download uint64 `json:"download_bytes"`
	Timeout  string `json:"timeout,omitempty"`
}

// Runtime is the node process's resource use, for soak runs.
type Runtime struct {
	Goroutines int    `json:"goroutines"`
	HeapAlloc  uint64 `json:"heap_alloc_bytes"`
	HeapInuse  uint64 `json:"heap_inuse_bytes"`
	// StackInuse is goroutine stacks: outside the heap, so not in the two
	// above, and not subject to the garbage collector's headroom.
	StackInuse uint64 `json:"stack_inuse_bytes"`
}

func (s *Server) messageRoutes() {
	s.mux.HandleFunc("POST /v1/send", s.send)
	s.mux.HandleFunc("GET /v1/inbox", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		msgs := s.n.Messages().Inbox(n)
		if msgs == nil {
			msgs = []messaging.Message{}
		}
		WriteJSON(w, http.StatusOK, msgs)
	})
	s.mux.HandleFunc("POST /v1/ping", s.ping)
	s.mux.HandleFunc("POST /v1/perf", s.perf)
	s.mux.HandleFunc("GET /v1/runtime", func(w http.ResponseWriter, r *http.Request) {
		// ?gc=1 collects first, so that a benchmark reads live memory, not garbage.
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		WriteJSON(w, http.StatusOK, Runtime{Goroutines: runtime.NumGoroutine(), HeapAlloc: ms.HeapAlloc, HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse})
	})
}

func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	var req SendRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	id, err := s.n.ResolvePeer(req.Peer)
	if err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	data, ok := bodyData(w, req.Data, req.DataBase64)
	if !ok {
		return
	}
	ctx, cancel, ok := RequestContext(w, r, req.Timeout, 30*time.Second)
	if !ok {
		return
	}
	defer cancel()
	rtt, err := s.n.Messages().Send(ctx, id, data)
	if err != nil {
		WriteError(w, sendStatus(err), err)
		return
	}
	WriteJSON(w, http.StatusOK, SendResult{RTT: rtt})
}

func sendStatus(err error) int {
	switch {
	case errors.Is(err, messaging.ErrSelf):
		return http.StatusBadRequest
	case errors.Is(err, protocol.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, messaging.ErrUnknownPeer):
		return http.StatusNotFound
	case errors.Is(err, messaging.ErrNotMember):
		return http.StatusForbidden
	case errors.Is(err, messaging.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, messaging.ErrUnreachable):
		return http.StatusBadGateway
	}
	return StatusFor(err)
}

func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	var req PingRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	if req.Count <= 0 {
		req.Count = 4
	}
	interval := time.Second
	if req.Interval != "" {
		d, err := time.ParseDuration(req.Interval)
		if err != nil || d < 0 {
			WriteError(w, http.StatusBadRequest, fmt.Errorf("bad interval %q", req.Interval))
			return
		}
		interval = d
	}
	ctx, cancel, ok := RequestContext(w, r, req.Timeout, PingBudget(req.Count, interval))
	if !ok {
		return
	}
	defer cancel()
	rtts, err := s.n.Ping(ctx, req.Target, req.Count, interval)
	res := PingResult{RTTs: rtts}
	if err != nil {
		if len(rtts) == 0 {
			WriteError(w, StatusFor(err), err)
			return
		}
		res.Error = err.Error()
	}
	WriteJSON(w, http.StatusOK, res)
}

// PingBudget is how long count pings interval apart may take: their
// intervals plus 30 s for the answers. It saturates at the longest
// time.Duration instead of overflowing into a negative (already expired)
// deadline, as --count 3000000 --interval 1h would.
func PingBudget(count int, interval time.Duration) time.Duration {
	const slack = 30 * time.Second
	if count <= 0 || interval <= 0 {
		return slack
	}
	if interval > (math.MaxInt64-slack)/time.Duration(count) {
		return math.MaxInt64
	}
	return time.Duration(count)*interval + slack
}

func (s *Server) perf(w http.ResponseWriter, r *http.Request) {
	var req PerfRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	ctx, cancel, ok := RequestContext(w, r, req.Timeout, 5*time.Minute)
	if !ok {
		return
	}
	defer cancel()
	res, err := s.n.Perf(ctx, req.Target, req.Upload, req.Download)
	if err != nil {
		WriteError(w, StatusFor(err), err)
		return
	}
	WriteJSON(w, http.StatusOK, res)
}
