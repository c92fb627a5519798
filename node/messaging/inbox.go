package messaging

import (
	"encoding/base64"
	"encoding/json"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The inbox keeps the most recent messages for people (overlay inbox); it
// is bounded in count and bytes so a chatty peer cannot grow it.
const (
	defaultInboxLen   = 1000
	defaultInboxBytes = 16 << 20
)

// Message is one received application message.
type Message struct {
	From       peer.ID
	Seq        uint64
	ReceivedAt time.Time
	Data       []byte
}

// messageJSON is Message for the control API: text stays text, other bytes
// are base64 with Encoding saying so.
type messageJSON struct {
	From       string    `json:"from"`
	Seq        uint64    `json:"seq"`
	ReceivedAt time.Time `json:"received_at"`
	Data       string    `json:"data"`
	Encoding   string    `json:"encoding"`
}

// MarshalJSON writes the message for the control API.
func (m Message) MarshalJSON() ([]byte, error) {
	j := messageJSON{From: m.From.String(), Seq: m.Seq, ReceivedAt: m.ReceivedAt, Data: string(m.Data), Encoding: "utf-8"}
	if !utf8.Valid(m.Data) {
		j.Data, j.Encoding = base64.StdEncoding.EncodeToString(m.Data), "base64"
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (m *Message) UnmarshalJSON(b []byte) error {
	var j messageJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	id, err := peer.Decode(j.From)
	if err != nil {
		return err
	}
	m.From, m.Seq, m.ReceivedAt, m.Data = id, j.Seq, j.ReceivedAt, []byte(j.Data)
	if j.Encoding == "base64" {
		if m.Data, err = base64.StdEncoding.DecodeString(j.Data); err != nil {
			return err
		}
	}
	return nil
}

type inbox struct {
	mu       sync.Mutex
	msgs     []Message
	bytes    int
	maxLen   int
	maxBytes int
}

func newInbox(maxLen, maxBytes int) *inbox { return &inbox{maxLen: maxLen, maxBytes: maxBytes} }

func (b *inbox) add(m Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, m)
	b.bytes += len(m.Data)
	for len(b.msgs) > b.maxLen || (b.bytes > b.maxBytes && len(b.msgs) > 1) {
		b.bytes -= len(b.msgs[0].Data)
		b.msgs[0] = Message{}
		b.msgs = b.msgs[1:]
	}
}

// last returns up to n of the newest messages, oldest first.
func (b *inbox) last(n int) []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n <= 0 || n > len(b.msgs) {
		n = len(b.msgs)
	}
	out := make([]Message, n)
	copy(out, b.msgs[len(b.msgs)-n:])
	return out
}

// subscription receives every message delivered after it was made.
type subscription struct {
	ch   chan Message
	done chan struct{}
	once sync.Once
}

func (s *subscription) stop() { s.once.Do(func() { close(s.done) }) }

// Inbox returns up to n of the most recent messages (n <= 0: all kept).
func (m *Messenger) Inbox(n int) []Message { return m.inbox.last(n) }

// SetHandler sets a function called with every message, in order per
// sender, before it is acknowledged. It must not block for long: the
// sender's stream waits for it.
func (m *Messenger) SetHandler(fn func(Message)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.handler = fn
}

// Subscribe returns a channel of every message received from now on, and a
// function that ends the subscription. Delivery waits for the reader, so
// read promptly or cancel.
func (m *Messenger) Subscribe(buf int) (<-chan Message, func()) {
	sub := &subscription{ch: make(chan Message, buf), done: make(chan struct{})}
	m.mu.Lock()
	m.subs[sub] = struct{}{}
	m.mu.Unlock()
	return sub.ch, func() {
		m.mu.Lock()
		delete(m.subs, sub)
		m.mu.Unlock()
		sub.stop()
	}
}

func (m *Messenger) deliver(msg Message) {
	m.inbox.add(msg)
	m.mu.Lock()
	h := m.handler
	subs := make([]*subscription, 0, len(m.subs))
	for s := range m.subs {
		subs = append(subs, s)
	}
	m.mu.Unlock()
	if h != nil {
		h(msg)
	}
	for _, s := range subs {
		select {
		case s.ch <- msg:
		case <-s.done:
		case <-m.ctx.Done():
		}
	}
}
