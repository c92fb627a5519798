package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// MessageID is the libp2p protocol ID of member messaging.
//
// Version history:
//
//	1.0.0  open, data, ack and error frames.
const MessageID = "/overlay/msg/1.0.0"

// MaxMessageSize is the largest application message, in bytes.
const MaxMessageSize = 1 << 20

// Protocol flow. A sender opens one stream per receiver and keeps it for
// every message it sends there; the receiver answers on the same stream.
//
//	sender                               receiver
//	  open(session) ------------------->  checks the sender is a member
//	  data(seq=1, bytes) -------------->  delivers, in stream order
//	  data(seq=2, bytes) -------------->  ...
//	                   <---------------  ack(seq=1)
//	                   <---------------  ack(seq=2)
//	                   <---------------  error(reason), then reset, on refusal
//
// The session is a random number the sender picks at start. Sequence numbers
// rise by one per message within a session. A sender that resends a message on
// a new stream reuses its number, and the receiver delivers each (session,
// seq) at most once, so a retry never duplicates a message.
const (
	frameOpen  = 0x10 // session uint64
	frameData  = 0x11 // seq uint64, then the message bytes (at most MaxMessageSize)
	frameAck   = 0x12 // seq uint64
	frameError = 0x13 // UTF-8 reason, at most MaxReasonSize bytes
)

// maxMessageFrame is the largest message-stream frame payload.
const maxMessageFrame = 8 + MaxMessageSize

// MessageFrameTimeout bounds reading one frame once its header has arrived.
const MessageFrameTimeout = 30 * time.Second

// MessageIdleTimeout closes a message stream that carried nothing this long;
// the sender opens a new one for its next message.
const MessageIdleTimeout = 10 * time.Minute

// ErrTooLarge reports a message over MaxMessageSize.
var ErrTooLarge = fmt.Errorf("message larger than %d bytes", MaxMessageSize)

// MsgFrame is one decoded frame of the message stream.
type MsgFrame struct {
	Type    byte
	Session uint64 // open
	Seq     uint64 // data, ack
	Data    []byte // data
	Reason  string // error
}

// ReadDeadliner is a stream whose read side can be bounded in time.
type ReadDeadliner interface {
	io.Reader
	SetReadDeadline(time.Time) error
}

// ReadMsgFrame reads one frame: it waits up to idle for the frame to start
// (0: no limit), then MessageFrameTimeout for the rest of it.
func ReadMsgFrame(r ReadDeadliner, idle time.Duration) (MsgFrame, error) {
	var hdr [frameHeaderLen]byte
	if idle > 0 {
		_ = r.SetReadDeadline(time.Now().Add(idle))
	}
	if _, err := io.ReadFull(r, hdr[:1]); err != nil {
		return MsgFrame{}, err
	}
	_ = r.SetReadDeadline(time.Now().Add(MessageFrameTimeout))
	defer r.SetReadDeadline(time.Time{})
	if _, err := io.ReadFull(r, hdr[1:]); err != nil {
		return MsgFrame{}, fmt.Errorf("read frame header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[1:5])
	if n > maxMessageFrame {
		return MsgFrame{}, fmt.Errorf("%w: %d bytes, cap %d", ErrFrameTooLarge, n, maxMessageFrame)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return MsgFrame{}, fmt.Errorf("read frame payload: %w", err)
	}
	return DecodeMsgFrame(hdr[0], payload)
}

// DecodeMsgFrame checks and decodes one frame's payload.
func DecodeMsgFrame(typ byte, p []byte) (MsgFrame, error) {
	f := MsgFrame{Type: typ}
	switch typ {
	case frameOpen:
		if len(p) != 8 {
			return f, fmt.Errorf("%w: open frame of %d bytes", ErrMalformed, len(p))
		}
		f.Session = binary.BigEndian.Uint64(p)
	case frameData:
		if len(p) < 8 || len(p)-8 > MaxMessageSize {
			return f, fmt.Errorf("%w: data frame of %d bytes", ErrMalformed, len(p))
		}
		f.Seq, f.Data = binary.BigEndian.Uint64(p), p[8:]
	case frameAck:
		if len(p) != 8 {
			return f, fmt.Errorf("%w: ack frame of %d bytes", ErrMalformed, len(p))
		}
		f.Seq = binary.BigEndian.Uint64(p)
	case frameError:
		if len(p) > MaxReasonSize {
			return f, fmt.Errorf("%w: error frame of %d bytes", ErrMalformed, len(p))
		}
		f.Reason = cleanReason(p)
	default:
		return f, fmt.Errorf("%w: unknown frame type %#x", ErrMalformed, typ)
	}
	return f, nil
}

// WriteOpen starts a message stream for a sender session.
func WriteOpen(w io.Writer, session uint64) error {
	return WriteFrame(w, frameOpen, binary.BigEndian.AppendUint64(nil, session))
}

// WriteData sends one message.
func WriteData(w io.Writer, seq uint64, data []byte) error {
	if len(data) > MaxMessageSize {
		return ErrTooLarge
	}
	return WriteFrame(w, frameData, binary.BigEndian.AppendUint64(nil, seq), data)
}

// WriteAck acknowledges one message.
func WriteAck(w io.Writer, seq uint64) error {
	return WriteFrame(w, frameAck, binary.BigEndian.AppendUint64(nil, seq))
}

// WriteMsgError tells the sender why the stream is refused.
func WriteMsgError(w io.Writer, reason string) error {
	return WriteFrame(w, frameError, []byte(truncate(reason, MaxReasonSize)))
}

// Frame type predicates, so callers need not know the numbers.
func (f MsgFrame) IsOpen() bool  { return f.Type == frameOpen }
func (f MsgFrame) IsData() bool  { return f.Type == frameData }
func (f MsgFrame) IsAck() bool   { return f.Type == frameAck }
func (f MsgFrame) IsError() bool { return f.Type == frameError }

// ErrRefused reports a receiver's error frame.
var ErrRefused = errors.New("refused by receiver")
