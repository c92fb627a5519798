package protocol

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// TunnelID is the libp2p protocol ID of TCP tunnels between members.
//
// Version history:
//
//	1.0.0  request (service name), accept, refuse (code and reason); then raw bytes.
//	2.0.0  (TunnelID2) request2 (session ID, service name), accept, refuse; then
//	       a resumable session's data phase (resume.go), which moves to a new
//	       stream on ResumeID when the path changes. A forwarder asks for 2.0.0
//	       first and speaks 1.0.0 to a member that has only that.
const (
	TunnelID  = "/overlay/tunnel/1.0.0"
	TunnelID2 = "/overlay/tunnel/2.0.0"
)

// Protocol flow. The forwarding side opens one stream per accepted TCP
// connection; the serving side answers on it, and from the accept on, the
// stream carries the TCP connection's bytes both ways, nothing else.
//
//	forwarder                            server
//	  request(service name) ---------->  checks: member, known service,
//	                                     allowed peer, dials the service
//	                   <---------------  accept
//	  bytes <=========================>  bytes   (each side's CloseWrite is
//	                                              the TCP half-close)
//	                   <---------------  refuse(code, reason), then close,
//	                                     instead of accept
//
// A stream reset means the TCP connection failed (either side went away);
// each side then resets its TCP connection too, so that neither program
// mistakes a cut for a clean end. A malformed request resets that stream
// only. The server reads the request under TunnelRequestTimeout; nothing
// else on the stream has a deadline, since a tunnel (an SSH session, say)
// may sit idle for hours.
const (
	frameTunnelRequest = 0x20 // service name: 1..MaxServiceNameSize bytes, see ValidServiceName
	frameTunnelAccept  = 0x21 // empty
	frameTunnelRefuse  = 0x22 // code uint8, then a UTF-8 reason, at most MaxReasonSize bytes
	// 2.0.0 only, in place of frameTunnelRequest:
	frameTunnelRequest2 = 0x23 // session ID [SessionIDLen]byte, then the service name as in 0x20
)

// ErrTunnelMalformed reports a tunnel frame that breaks the format.
var ErrTunnelMalformed = errors.New("malformed tunnel frame")

// MaxServiceNameSize caps a service name on the wire. Names people choose
// are far shorter (ValidServiceName allows 64); the wire leaves room.
const MaxServiceNameSize = 256

// maxServiceName is the longest name ValidServiceName accepts.
const maxServiceName = 64

// TunnelRequestTimeout bounds reading a request, and the forwarder's wait
// for the answer beyond the service dial.
const TunnelRequestTimeout = 10 * time.Second

// TunnelCode says why a server refused a tunnel. A reader maps a code it
// does not know to TunnelOther.
type TunnelCode uint8

const (
	TunnelOther          TunnelCode = 0
	TunnelUnknownService TunnelCode = 1 // no service of that name is exposed
	TunnelNotAllowed     TunnelCode = 2 // the service admits only some members, not this one
	TunnelServiceDown    TunnelCode = 3 // the server could not connect to the service's address
	TunnelNotMember      TunnelCode = 4 // the opener has not passed the handshake
)

func (c TunnelCode) String() string {
	switch c {
	case TunnelUnknownService:
		return "unknown service"
	case TunnelNotAllowed:
		return "not allowed"
	case TunnelServiceDown:
		return "service down"
	case TunnelNotMember:
		return "not a member"
	}
	return "refused"
}

// TunnelAnswer is the server's answer to a request.
type TunnelAnswer struct {
	OK     bool
	Code   TunnelCode // when refused
	Reason string     // when refused: the server's wording, cleaned and capped
}

// ValidServiceName reports whether name can name a service: 1 to 64
// letters, digits, '.', '_' or '-', so that it is safe in a log line, a
// file and a command line.
func ValidServiceName(name string) error {
	if name == "" || len(name) > maxServiceName {
		return fmt.Errorf("service name must be 1 to %d characters, not %d", maxServiceName, len(name))
	}
	if i := strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}); i >= 0 {
		r, _ := utf8.DecodeRuneInString(name[i:])
		return fmt.Errorf("service name %q: character %q not allowed (letters, digits, '.', '_', '-')", name, r)
	}
	return nil
}

// WriteTunnelRequest asks for the service name.
func WriteTunnelRequest(w io.Writer, name string) error {
	if err := ValidServiceName(name); err != nil {
		return err
	}
	return WriteFrame(w, frameTunnelRequest, []byte(name))
}

// WriteTunnelAccept tells the forwarder that bytes may flow.
func WriteTunnelAccept(w io.Writer) error { return WriteFrame(w, frameTunnelAccept) }

// WriteTunnelRefuse tells the forwarder why not.
func WriteTunnelRefuse(w io.Writer, code TunnelCode, reason string) error {
	return WriteFrame(w, frameTunnelRefuse, []byte{byte(code)}, []byte(truncate(reason, MaxReasonSize)))
}

// WriteTunnelRequest2 asks for the service name, as session id (2.0.0).
func WriteTunnelRequest2(w io.Writer, id SessionID, name string) error {
	if err := ValidServiceName(name); err != nil {
		return err
	}
	return WriteFrame(w, frameTunnelRequest2, id[:], []byte(name))
}

// ReadTunnelRequest2 reads a 2.0.0 request within d and returns the
// session ID and the service name.
func ReadTunnelRequest2(r ReadDeadliner, d time.Duration) (SessionID, string, error) {
	typ, p, err := readDeadline(r, d, SessionIDLen+MaxServiceNameSize)
	if err != nil {
		return SessionID{}, "", fmt.Errorf("read tunnel request: %w", err)
	}
	return DecodeTunnelRequest2(typ, p)
}

// DecodeTunnelRequest2 checks one 2.0.0 request frame's payload.
func DecodeTunnelRequest2(typ byte, p []byte) (SessionID, string, error) {
	if typ != frameTunnelRequest2 || len(p) < SessionIDLen {
		return SessionID{}, "", fmt.Errorf("%w: frame %#x of %d bytes where a tunnel request belongs", ErrTunnelMalformed, typ, len(p))
	}
	var id SessionID
	copy(id[:], p)
	name, err := DecodeTunnelRequest(frameTunnelRequest, p[SessionIDLen:])
	return id, name, err
}

// ReadTunnelRequest reads a request within d and returns the service name.
// Its errors wrap ErrTunnelMalformed for a frame that is not a valid request.
func ReadTunnelRequest(r ReadDeadliner, d time.Duration) (string, error) {
	typ, p, err := readDeadline(r, d, MaxServiceNameSize)
	if err != nil {
		return "", fmt.Errorf("read tunnel request: %w", err)
	}
	return DecodeTunnelRequest(typ, p)
}

// DecodeTunnelRequest checks one request frame's payload.
func DecodeTunnelRequest(typ byte, p []byte) (string, error) {
	if typ != frameTunnelRequest {
		return "", fmt.Errorf("%w: frame type %#x where a tunnel request belongs", ErrTunnelMalformed, typ)
	}
	if len(p) > MaxServiceNameSize || !utf8.Valid(p) {
		return "", fmt.Errorf("%w: tunnel request of %d bytes", ErrTunnelMalformed, len(p))
	}
	name := string(p)
	if err := ValidServiceName(name); err != nil {
		return "", fmt.Errorf("%w: %v", ErrTunnelMalformed, err)
	}
	return name, nil
}

// ReadTunnelAnswer reads the server's answer within d.
func ReadTunnelAnswer(r ReadDeadliner, d time.Duration) (TunnelAnswer, error) {
	typ, p, err := readDeadline(r, d, 1+MaxReasonSize)
	if err != nil {
		return TunnelAnswer{}, fmt.Errorf("read tunnel answer: %w", err)
	}
	return DecodeTunnelAnswer(typ, p)
}

// DecodeTunnelAnswer checks one answer frame's payload.
func DecodeTunnelAnswer(typ byte, p []byte) (TunnelAnswer, error) {
	switch typ {
	case frameTunnelAccept:
		if len(p) != 0 {
			return TunnelAnswer{}, fmt.Errorf("%w: accept frame of %d bytes", ErrTunnelMalformed, len(p))
		}
		return TunnelAnswer{OK: true}, nil
	case frameTunnelRefuse:
		if len(p) < 1 || len(p) > 1+MaxReasonSize {
			return TunnelAnswer{}, fmt.Errorf("%w: refuse frame of %d bytes", ErrTunnelMalformed, len(p))
		}
		code := TunnelCode(p[0])
		if code > TunnelNotMember {
			code = TunnelOther
		}
		return TunnelAnswer{Code: code, Reason: cleanReason(p[1:])}, nil
	}
	return TunnelAnswer{}, fmt.Errorf("%w: frame type %#x where a tunnel answer belongs", ErrTunnelMalformed, typ)
}

// readDeadline reads one frame of at most max bytes within d, then clears
// the deadline: the bytes after it are the tunnel's, unbounded in time.
func readDeadline(r ReadDeadliner, d time.Duration, max uint32) (byte, []byte, error) {
	_ = r.SetReadDeadline(time.Now().Add(d))
	typ, p, err := ReadFrame(r, max)
	_ = r.SetReadDeadline(time.Time{})
	if errors.Is(err, ErrFrameTooLarge) {
		err = fmt.Errorf("%w: %v", ErrTunnelMalformed, err)
	}
	return typ, p, err
}
