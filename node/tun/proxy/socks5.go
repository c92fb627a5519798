package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// SOCKS5 (RFC 1928) as served here: no authentication, CONNECT only.
//
//	greeting  VER(5) NMETHODS(1..255) METHODS[NMETHODS]
//	choice    VER(5) METHOD(0 = none, 0xFF = no acceptable method)
//	request   VER(5) CMD(1 = CONNECT) RSV(0) ATYP ADDR PORT(2, big-endian)
//	          ATYP 1: 4-byte IPv4; 3: LEN(1..255) and a domain name; 4: 16-byte IPv6
//	reply     VER(5) REP RSV(0) ATYP(1) BND.ADDR(0.0.0.0) BND.PORT(0)
//
// Every field has a one-byte length at most, so a request is at most 262
// bytes: the caps are the protocol's own. A deadline covers the exchange.
const (
	socksVersion  = 5
	methodNone    = 0
	methodNoMatch = 0xFF
	cmdConnect    = 1
	atypIPv4      = 1
	atypDomain    = 3
	atypIPv6      = 4
)

// SOCKS5 reply codes (REP).
const (
	RepSucceeded          = 0
	RepGeneralFailure     = 1
	RepNetworkUnreachable = 3
	RepHostUnreachable    = 4
	RepConnectionRefused  = 5
	RepTTLExpired         = 6
	RepCommandNotSupp     = 7
	RepAddrTypeNotSupp    = 8
)

// Parse errors. A request error carries the reply code to send.
var (
	ErrVersion  = errors.New("socks5: not version 5")
	ErrNoMethod = errors.New("socks5: client offers no authentication-free method")
)

// RequestError is a request the server refuses with the reply code Rep.
type RequestError struct {
	Rep byte
	Err error
}

func (e *RequestError) Error() string { return e.Err.Error() }
func (e *RequestError) Unwrap() error { return e.Err }

// Request is a parsed SOCKS5 request.
type Request struct {
	Cmd  byte
	Host string // an IP literal or a domain name
	Port uint16
}

// ReadGreeting reads a client's greeting and reports whether it offers
// "no authentication".
func ReadGreeting(r io.Reader) error {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return fmt.Errorf("socks5: read greeting: %w", err)
	}
	if hdr[0] != socksVersion {
		return ErrVersion
	}
	if hdr[1] == 0 {
		return ErrNoMethod
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(r, methods); err != nil {
		return fmt.Errorf("socks5: read methods: %w", err)
	}
	for _, m := range methods {
		if m == methodNone {
			return nil
		}
	}
	return ErrNoMethod
}

// ReadRequest reads one request. A request of a kind this server does not
// serve (BIND, UDP ASSOCIATE, an unknown address type) is a *RequestError
// with the reply code to send.
func ReadRequest(r io.Reader) (Request, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Request{}, fmt.Errorf("socks5: read request: %w", err)
	}
	if hdr[0] != socksVersion {
		return Request{}, ErrVersion
	}
	req := Request{Cmd: hdr[1]}
	switch hdr[3] {
	case atypIPv4, atypIPv6:
		b := make([]byte, 4)
		if hdr[3] == atypIPv6 {
			b = make([]byte, 16)
		}
		if _, err := io.ReadFull(r, b); err != nil {
			return Request{}, fmt.Errorf("socks5: read address: %w", err)
		}
		ip, _ := netip.AddrFromSlice(b)
		req.Host = ip.String()
	case atypDomain:
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return Request{}, fmt.Errorf("socks5: read name length: %w", err)
		}
		if n[0] == 0 {
			return Request{}, &RequestError{RepHostUnreachable, errors.New("socks5: empty domain name")}
		}
		b := make([]byte, n[0])
		if _, err := io.ReadFull(r, b); err != nil {
			return Request{}, fmt.Errorf("socks5: read name: %w", err)
		}
		req.Host = string(b)
	default:
		return Request{}, &RequestError{RepAddrTypeNotSupp, fmt.Errorf("socks5: address type %d", hdr[3])}
	}
	var port [2]byte
	if _, err := io.ReadFull(r, port[:]); err != nil {
		return Request{}, fmt.Errorf("socks5: read port: %w", err)
	}
	req.Port = binary.BigEndian.Uint16(port[:])
	if req.Cmd != cmdConnect {
		return req, &RequestError{RepCommandNotSupp, fmt.Errorf("socks5: command %d (only CONNECT)", req.Cmd)}
	}
	return req, nil
}

// writeReply sends a reply with a zero bound address: clients of CONNECT
// do not use it, and the overlay address is no business of theirs.
func writeReply(w io.Writer, rep byte) error {
	_, err := w.Write([]byte{socksVersion, rep, 0, atypIPv4, 0, 0, 0, 0, 0, 0})
	return err
}

// ServeSOCKS5 serves SOCKS5 on l until Close. It returns at once.
func (s *Server) ServeSOCKS5(l net.Listener) error { return s.acceptLoop(l, s.socks5) }

func (s *Server) socks5(c net.Conn) {
	c.SetDeadline(time.Now().Add(HandshakeTimeout))
	if err := ReadGreeting(c); err != nil {
		if errors.Is(err, ErrNoMethod) {
			c.Write([]byte{socksVersion, methodNoMatch})
		}
		s.log.Debug("socks5: greeting", "from", c.RemoteAddr(), "err", err)
		return
	}
	if _, err := c.Write([]byte{socksVersion, methodNone}); err != nil {
		return
	}
	req, err := ReadRequest(c)
	if err != nil {
		var re *RequestError
		if errors.As(err, &re) {
			writeReply(c, re.Rep)
		}
		s.log.Debug("socks5: request", "from", c.RemoteAddr(), "err", err)
		return
	}
	c.SetDeadline(time.Time{}) // the dial has its own deadline
	target, err := s.dial(s.ctx, req.Host, req.Port)
	if err != nil {
		s.log.Debug("socks5: connect", "to", req.Host, "port", req.Port, "err", err)
		c.SetWriteDeadline(time.Now().Add(HandshakeTimeout))
		writeReply(c, replyFor(err))
		return
	}
	if !s.track(target) {
		return
	}
	defer s.untrack(target)
	c.SetWriteDeadline(time.Now().Add(HandshakeTimeout))
	if err := writeReply(c, RepSucceeded); err != nil {
		return
	}
	c.SetWriteDeadline(time.Time{})
	pipe(c, target)
}

// replyFor maps a dial error to the closest SOCKS5 reply code. gVisor's
// gonet reports errors as plain text (tcpip.Err*.String()), the host's as
// errnos: both are recognized, and a test checks gVisor's texts.
func replyFor(err error) byte {
	var ne net.Error
	msg := err.Error()
	switch {
	case errors.Is(err, ErrNotOverlay):
		return RepHostUnreachable
	case errors.Is(err, syscall.ECONNREFUSED), strings.Contains(msg, "connection was refused"):
		return RepConnectionRefused
	case errors.Is(err, syscall.EHOSTUNREACH), strings.Contains(msg, "no route to host"):
		return RepHostUnreachable
	case errors.Is(err, syscall.ENETUNREACH), strings.Contains(msg, "network is unreachable"):
		return RepNetworkUnreachable
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return RepTTLExpired
	}
	return RepGeneralFailure
}
