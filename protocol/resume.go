package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// ResumeID is the libp2p protocol ID that carries a resumable session
// (node/resume) on a new stream after its first one: a session survives
// the loss or the replacement of its stream (a relayed path giving way to
// a direct one, a direct one dying) without losing, repeating or
// reordering a byte.
//
// Version history:
//
//	1.0.0  resume (session ID, offset), resumed (offset) or gone (reason);
//	       then the data phase below.
const ResumeID = "/overlay/resume/1.0.0"

// Protocol flow. A session starts on the stream of the protocol that
// carries it (TunnelID2, PerfResumeID): its request holds the session ID
// the opening side (the client) chose, and its accept starts the data
// phase. When that stream fails, or when a better path appears (a direct
// connection to a peer reached through a relay), the client opens a new
// stream on ResumeID:
//
//	client                                  server
//	  resume(session ID, received) ------->  finds the session of that ID
//	                                         opened by this peer
//	                 <--------------------  resumed(received)
//	                 <--------------------  gone(reason), then close,
//	                                        for a session it no longer holds
//
// Each side then sends again from the offset the other has received, and
// drops the stream the session used before. Offsets count the bytes
// written into the session by one side since it began; the end of data
// (fin) takes one more position, so that an ack past the last byte says
// the fin arrived.
//
// Data phase, both ways on one stream, in frames of frame.go's layout:
const (
	frameResumeData  = 0x30 // offset uint64, then 1..MaxResumeData bytes that start at that offset
	frameResumeAck   = 0x31 // offset uint64: every position below it arrived
	frameResumeFin   = 0x32 // offset uint64: the end of data, after the byte at offset-1
	frameResumeAbort = 0x33 // UTF-8 reason, at most MaxReasonSize bytes: the sender gave the session up
	frameResume      = 0x38 // session ID [16]byte, offset uint64 (the client has received up to it)
	frameResumed     = 0x39 // offset uint64 (the server has received up to it)
	frameResumeGone  = 0x3a // UTF-8 reason, at most MaxReasonSize bytes
)

// MaxResumeData caps the bytes of one data frame.
const MaxResumeData = 64 << 10

// MaxResumeFrame caps any frame's payload in a session's data phase.
const MaxResumeFrame = 8 + MaxResumeData

const maxResumeFrame = MaxResumeFrame

// ResumeTimeout bounds the resume exchange: the server's read of the
// resume, the client's wait for the answer.
const ResumeTimeout = 10 * time.Second

// SessionIDLen is the length of a session ID: random, chosen by the client.
const SessionIDLen = 16

// SessionID names a session between two peers.
type SessionID [SessionIDLen]byte

// ErrResumeMalformed reports a frame of a resumable session that breaks
// the format.
var ErrResumeMalformed = errors.New("malformed session frame")

// ResumeKind is what a data-phase frame says.
type ResumeKind uint8

const (
	ResumeData ResumeKind = iota + 1
	ResumeAck
	ResumeFin
	ResumeAbort
)

// ResumeFrame is one decoded data-phase frame.
type ResumeFrame struct {
	Kind   ResumeKind
	Off    uint64
	Data   []byte // ResumeData: 1..MaxResumeData bytes
	Reason string // ResumeAbort
}

// AppendResumeData appends a data frame carrying p (1..MaxResumeData
// bytes) that starts at off, so that a writer sends a frame in one Write.
func AppendResumeData(b []byte, off uint64, p []byte) []byte {
	return append(AppendResumeDataHeader(b, off, len(p)), p...)
}

// AppendResumeAck appends an ack of every position below off.
func AppendResumeAck(b []byte, off uint64) []byte { return appendOff(b, frameResumeAck, off) }

// AppendResumeFin appends the end of data at off.
func AppendResumeFin(b []byte, off uint64) []byte { return appendOff(b, frameResumeFin, off) }

func appendOff(b []byte, typ byte, off uint64) []byte {
	b = append(b, typ)
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, off)
}

// WriteResumeAbort tells the other side that this one gave the session up.
func WriteResumeAbort(w io.Writer, reason string) error {
	return WriteFrame(w, frameResumeAbort, []byte(truncate(reason, MaxReasonSize)))
}

// ReadResumeFrame reads one data-phase frame. It sets no deadline: a
// session may sit idle for hours, and its owner notices a dead path by
// other means (the connection closing, a resume).
func ReadResumeFrame(r io.Reader) (ResumeFrame, error) {
	typ, p, err := ReadFrame(r, maxResumeFrame)
	if err != nil {
		if errors.Is(err, ErrFrameTooLarge) {
			err = fmt.Errorf("%w: %v", ErrResumeMalformed, err)
		}
		return ResumeFrame{}, err
	}
	return DecodeResumeFrame(typ, p)
}

// ReadResumeFrameBuf is ReadResumeFrame reading the payload into the
// buffer get returns, asked for once a frame's header has arrived (so an
// idle reader holds none); a data frame's Data then aliases it. A buffer
// of MaxResumeFrame bytes holds any frame.
func ReadResumeFrameBuf(r io.Reader, get func() []byte) (ResumeFrame, error) {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return ResumeFrame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[1:5])
	if n > maxResumeFrame {
		return ResumeFrame{}, fmt.Errorf("%w: %v: %d bytes, cap %d", ErrResumeMalformed, ErrFrameTooLarge, n, maxResumeFrame)
	}
	buf := get()
	if uint32(len(buf)) < n {
		buf = make([]byte, n)
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return ResumeFrame{}, fmt.Errorf("read frame payload: %w", err)
	}
	return DecodeResumeFrame(hdr[0], buf[:n])
}

// DecodeResumeFrame checks one data-phase frame's payload. A data frame's
// Data aliases p.
func DecodeResumeFrame(typ byte, p []byte) (ResumeFrame, error) {
	switch typ {
	case frameResumeData:
		if len(p) < 9 || len(p) > maxResumeFrame {
			return ResumeFrame{}, fmt.Errorf("%w: data frame of %d bytes", ErrResumeMalformed, len(p))
		}
		off := binary.BigEndian.Uint64(p)
		if off > off+uint64(len(p)-8) {
			return ResumeFrame{}, fmt.Errorf("%w: data at offset %d overflows", ErrResumeMalformed, off)
		}
		return ResumeFrame{Kind: ResumeData, Off: off, Data: p[8:]}, nil
	case frameResumeAck, frameResumeFin:
		if len(p) != 8 {
			return ResumeFrame{}, fmt.Errorf("%w: frame %#x of %d bytes", ErrResumeMalformed, typ, len(p))
		}
		k := ResumeAck
		if typ == frameResumeFin {
			k = ResumeFin
		}
		return ResumeFrame{Kind: k, Off: binary.BigEndian.Uint64(p)}, nil
	case frameResumeAbort:
		if len(p) > MaxReasonSize {
			return ResumeFrame{}, fmt.Errorf("%w: abort frame of %d bytes", ErrResumeMalformed, len(p))
		}
		return ResumeFrame{Kind: ResumeAbort, Reason: cleanReason(p)}, nil
	}
	return ResumeFrame{}, fmt.Errorf("%w: frame type %#x in a session's data", ErrResumeMalformed, typ)
}

// WriteResume asks the server to carry on session id on this stream; the
// client has received every position below off.
func WriteResume(w io.Writer, id SessionID, off uint64) error {
	return WriteFrame(w, frameResume, id[:], binary.BigEndian.AppendUint64(nil, off))
}

// ReadResume reads a resume within d.
func ReadResume(r ReadDeadliner, d time.Duration) (SessionID, uint64, error) {
	typ, p, err := readResumeDeadline(r, d, SessionIDLen+8)
	if err != nil {
		return SessionID{}, 0, fmt.Errorf("read resume: %w", err)
	}
	return DecodeResume(typ, p)
}

// DecodeResume checks one resume frame's payload.
func DecodeResume(typ byte, p []byte) (SessionID, uint64, error) {
	if typ != frameResume || len(p) != SessionIDLen+8 {
		return SessionID{}, 0, fmt.Errorf("%w: frame %#x of %d bytes where a resume belongs", ErrResumeMalformed, typ, len(p))
	}
	var id SessionID
	copy(id[:], p)
	return id, binary.BigEndian.Uint64(p[SessionIDLen:]), nil
}

// WriteResumed accepts a resume: the server has received every position
// below off.
func WriteResumed(w io.Writer, off uint64) error {
	return WriteFrame(w, frameResumed, binary.BigEndian.AppendUint64(nil, off))
}

// WriteResumeGone refuses a resume: the session is over or unknown.
func WriteResumeGone(w io.Writer, reason string) error {
	return WriteFrame(w, frameResumeGone, []byte(truncate(reason, MaxReasonSize)))
}

// ResumeAnswer is the server's answer to a resume.
type ResumeAnswer struct {
	OK     bool
	Off    uint64 // when OK
	Reason string // when refused
}

// ReadResumeAnswer reads the answer to a resume within d.
func ReadResumeAnswer(r ReadDeadliner, d time.Duration) (ResumeAnswer, error) {
	typ, p, err := readResumeDeadline(r, d, MaxReasonSize)
	if err != nil {
		return ResumeAnswer{}, fmt.Errorf("read resume answer: %w", err)
	}
	return DecodeResumeAnswer(typ, p)
}

// DecodeResumeAnswer checks one answer frame's payload.
func DecodeResumeAnswer(typ byte, p []byte) (ResumeAnswer, error) {
	switch typ {
	case frameResumed:
		if len(p) != 8 {
			return ResumeAnswer{}, fmt.Errorf("%w: resumed frame of %d bytes", ErrResumeMalformed, len(p))
		}
		return ResumeAnswer{OK: true, Off: binary.BigEndian.Uint64(p)}, nil
	case frameResumeGone:
		if len(p) > MaxReasonSize {
			return ResumeAnswer{}, fmt.Errorf("%w: gone frame of %d bytes", ErrResumeMalformed, len(p))
		}
		return ResumeAnswer{Reason: cleanReason(p)}, nil
	}
	return ResumeAnswer{}, fmt.Errorf("%w: frame type %#x where a resume answer belongs", ErrResumeMalformed, typ)
}

// readResumeDeadline reads one frame of at most max bytes within d, then
// clears the deadline.
func readResumeDeadline(r ReadDeadliner, d time.Duration, max uint32) (byte, []byte, error) {
	_ = r.SetReadDeadline(time.Now().Add(d))
	typ, p, err := ReadFrame(r, max)
	_ = r.SetReadDeadline(time.Time{})
	if errors.Is(err, ErrFrameTooLarge) {
		err = fmt.Errorf("%w: %v", ErrResumeMalformed, err)
	}
	return typ, p, err
}

// AppendResumeDataHeader appends the header of a data frame of n bytes
// (1..MaxResumeData) that start at off; the caller appends the n bytes.
func AppendResumeDataHeader(b []byte, off uint64, n int) []byte {
	b = append(b, frameResumeData)
	b = binary.BigEndian.AppendUint32(b, uint32(8+n))
	return binary.BigEndian.AppendUint64(b, off)
}
