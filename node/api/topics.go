package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/overlay-net/overlay/node/topics"
	"github.com/overlay-net/overlay/protocol"
)

// Topic routes (docs/topics.md):
//
//	POST /v1/topics/publish          PublishRequest -> topics.PublishResult
//	GET  /v1/topics                  -> []topics.TopicInfo
//	GET  /v1/topics/subscribe?topic= Server-Sent Events: "message" events
//	                                 (TopicMessage), a "stats" event
//	                                 (topics.SubStats) when its counts change,
//	                                 a ": keepalive" comment every
//	                                 KeepaliveEvery.
const (
	// KeepaliveEvery is how often a subscription stream says it is alive.
	KeepaliveEvery = 15 * time.Second
	// maxStreams bounds the subscription streams served at once.
	maxStreams = 32
	// MaxEvent caps one event a client reads: a message of
	// topics.MaxData as base64 in JSON, with room for the other fields.
	MaxEvent = 2*topics.MaxData + 64<<10
)

// PublishRequest publishes one message. Data is text; DataBase64, if set, wins.
type PublishRequest struct {
	Topic      string `json:"topic"`
	Data       string `json:"data"`
	DataBase64 string `json:"data_base64,omitempty"`
	Timeout    string `json:"timeout,omitempty"`
}

// TopicMessage is a message as a subscription stream carries it: Text when
// the data is text, else DataBase64.
type TopicMessage struct {
	Topic      string    `json:"topic"`
	From       string    `json:"from"`
	Seq        uint64    `json:"seq"`
	Text       *string   `json:"text,omitempty"`
	DataBase64 string    `json:"data_base64,omitempty"`
	Missed     uint64    `json:"missed,omitempty"`
	Received   time.Time `json:"received"`
}

// Data returns the message's bytes.
func (m TopicMessage) Data() ([]byte, error) {
	if m.Text != nil {
		return []byte(*m.Text), nil
	}
	return base64.StdEncoding.DecodeString(m.DataBase64)
}

func toTopicMessage(m topics.Message) TopicMessage {
	tm := TopicMessage{Topic: m.Topic, From: m.From.String(), Seq: m.Seq, Missed: m.Missed, Received: m.Received}
	if isText(m.Data) {
		s := string(m.Data)
		tm.Text = &s
	} else {
		tm.DataBase64 = base64.StdEncoding.EncodeToString(m.Data)
	}
	return tm
}

// errNoTopics answers when the node runs without topics.
var errNoTopics = errors.New("this node runs without topics")

func (s *Server) topicRoutes() {
	streams := make(chan struct{}, maxStreams)
	s.mux.HandleFunc("GET /v1/topics", func(w http.ResponseWriter, r *http.Request) {
		ts := s.n.Topics()
		if ts == nil {
			WriteJSON(w, http.StatusOK, []topics.TopicInfo{})
			return
		}
		WriteJSON(w, http.StatusOK, ts.Topics())
	})
	s.mux.HandleFunc("POST /v1/topics/publish", s.publish)
	s.mux.HandleFunc("GET /v1/topics/stats", func(w http.ResponseWriter, r *http.Request) {
		ts := s.n.Topics()
		if ts == nil {
			WriteError(w, http.StatusNotFound, errNoTopics)
			return
		}
		st := TopicStats{Wire: ts.Wire(), Refusals: ts.Stats(), Scores: map[string]float64{}, Backfill: ts.Backfill()}
		for p, v := range ts.Scores() {
			st.Scores[p.String()] = v
		}
		WriteJSON(w, http.StatusOK, st)
	})
	s.mux.HandleFunc("GET /v1/topics/subscribe", func(w http.ResponseWriter, r *http.Request) {
		select {
		case streams <- struct{}{}:
			defer func() { <-streams }()
		default:
			WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("busy: %d subscription streams open already", maxStreams))
			return
		}
		s.subscribe(w, r)
	})
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	var req PublishRequest
	if !ReadJSON(w, r, &req) {
		return
	}
	ts := s.n.Topics()
	if ts == nil {
		WriteError(w, http.StatusNotFound, errNoTopics)
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
	res, err := ts.Publish(ctx, req.Topic, data)
	if err != nil {
		WriteError(w, topicStatus(err), err)
		return
	}
	WriteJSON(w, http.StatusOK, res)
}

func topicStatus(err error) int {
	switch {
	case errors.Is(err, protocol.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, topics.ErrTopicName):
		return http.StatusBadRequest
	case errors.Is(err, topics.ErrNotAllowed):
		return http.StatusForbidden
	case errors.Is(err, topics.ErrTooMany), errors.Is(err, topics.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// subscribe streams a topic's messages as Server-Sent Events until the
// client goes or the node closes the topic.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	ts := s.n.Topics()
	if ts == nil {
		WriteError(w, http.StatusNotFound, errNoTopics)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		WriteError(w, http.StatusInternalServerError, errors.New("streaming unsupported"))
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	context.AfterFunc(s.closing, cancel) // Close ends streams before it waits for requests
	sub, err := ts.Subscribe(ctx, r.URL.Query().Get("topic"), 0)
	if err != nil {
		WriteError(w, topicStatus(err), err)
		return
	}
	defer sub.Close()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	keep := time.NewTicker(KeepaliveEvery)
	defer keep.Stop()
	statsTick := time.NewTicker(time.Second)
	defer statsTick.Stop()
	var last topics.SubStats
	for {
		var err error
		select {
		case m, ok := <-sub.C():
			if !ok {
				return
			}
			err = writeEvent(w, "message", toTopicMessage(m))
		case <-statsTick.C:
			if st := sub.Stats(); st.Dropped != last.Dropped || st.Missed != last.Missed {
				last = st
				err = writeEvent(w, "stats", st)
			}
		case <-keep.C:
			_, err = io.WriteString(w, ": keepalive\n\n")
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
		fl.Flush()
	}
}

func writeEvent(w io.Writer, name string, v any) error {
	b, err := encode(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
	return err
}

// Event is one Server-Sent Event.
type Event struct {
	Name string
	Data []byte
}

// ErrEventTooLarge means an event was over MaxEvent.
var ErrEventTooLarge = fmt.Errorf("event larger than %d bytes", MaxEvent)

// ReadEvent reads the next event from a Server-Sent Events stream; one of
// comments only (a keepalive) comes back with no Name. An event over max
// bytes is an error.
func ReadEvent(r *bufio.Reader, max int) (Event, error) {
	var ev Event
	var data [][]byte
	size, lines := 0, 0
	for {
		line, err := r.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			if size+len(line) > max {
				return Event{}, ErrEventTooLarge
			}
			var more []byte
			more, err = r.ReadSlice('\n')
			line = append(append([]byte(nil), line...), more...)
		}
		if err != nil {
			return Event{}, err
		}
		size += len(line)
		if size > max {
			return Event{}, ErrEventTooLarge
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(line) == 0 {
			if lines == 0 {
				continue
			}
			ev.Data = bytes.Join(data, []byte("\n"))
			return ev, nil
		}
		lines++
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			ev.Name = string(value)
		case "data":
			data = append(data, append([]byte(nil), value...))
		}
	}
}

// TopicStats is the node's gossipsub as a whole: what it sent, what its
// validator refused by reason, and each scored peer's score.
type TopicStats struct {
	Wire     topics.WireStats         `json:"wire"`
	Refusals map[topics.Reason]uint64 `json:"refusals"`
	Scores   map[string]float64       `json:"scores"`
	// Backfill counts missed messages asked for and served
	// (/overlay/topics/backfill/1.0.0).
	Backfill topics.BackfillStats `json:"backfill"`
}

// TopicStats returns the node's topic statistics.
func (c *Client) TopicStats(ctx context.Context) (TopicStats, error) {
	var st TopicStats
	return st, c.Do(ctx, http.MethodGet, "/v1/topics/stats", nil, &st)
}

// PublishTopic publishes data to topic.
func (c *Client) PublishTopic(ctx context.Context, topic string, data []byte, timeout time.Duration) (topics.PublishResult, error) {
	var res topics.PublishResult
	if len(data) > topics.MaxData {
		return res, &APIError{Code: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("%v (%d bytes)", protocol.ErrTooLarge, len(data))}
	}
	req := PublishRequest{Topic: topic, Timeout: timeout.String()}
	if isText(data) {
		req.Data = string(data)
	} else {
		req.DataBase64 = base64.StdEncoding.EncodeToString(data)
	}
	if b, err := encode(req); err == nil && len(b) > MaxBody {
		req.Data, req.DataBase64 = "", base64.StdEncoding.EncodeToString(data)
	}
	return res, c.Do(ctx, http.MethodPost, "/v1/topics/publish", req, &res)
}

// Topics lists the node's joined topics.
func (c *Client) Topics(ctx context.Context) ([]topics.TopicInfo, error) {
	var ts []topics.TopicInfo
	return ts, c.Do(ctx, http.MethodGet, "/v1/topics", nil, &ts)
}

// Subscribe follows topic through the node until ctx is done or the stream
// ends, calling onMessage for each message and onStats when the
// follower's counts of dropped or missed messages change. A stream silent
// for three keepalives is taken for dead.
func (c *Client) Subscribe(ctx context.Context, topic string, onMessage func(TopicMessage) error, onStats func(topics.SubStats)) error {
	base, err := c.baseURL(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/topics/subscribe?topic="+url.QueryEscape(topic), nil)
	if err != nil {
		return err
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
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var eb ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			return &APIError{Code: resp.StatusCode, Message: eb.Error}
		}
		return &APIError{Code: resp.StatusCode, Message: resp.Status}
	}
	idle := time.AfterFunc(3*KeepaliveEvery, cancel)
	defer idle.Stop()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		ev, err := ReadEvent(br, MaxEvent)
		if err != nil {
			if ctx.Err() != nil && idle.Stop() {
				return ctx.Err() // the caller's
			}
			if errors.Is(err, io.EOF) {
				return errors.New("subscription stream ended")
			}
			return fmt.Errorf("read subscription stream: %w", err)
		}
		idle.Reset(3 * KeepaliveEvery)
		switch ev.Name {
		case "message":
			var m TopicMessage
			if err := json.Unmarshal(ev.Data, &m); err != nil {
				return fmt.Errorf("decode message event: %w", err)
			}
			if err := onMessage(m); err != nil {
				return err
			}
		case "stats":
			var st topics.SubStats
			if err := json.Unmarshal(ev.Data, &st); err == nil && onStats != nil {
				onStats(st)
			}
		}
	}
}
