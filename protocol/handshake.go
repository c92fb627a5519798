package protocol

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/cert"
)

// HandshakeID is the libp2p protocol ID of the handshake. It changes only if
// the frame layout below changes; feature changes bump Version instead, so
// that a peer of another version can still be told why it is refused.
const HandshakeID = "/overlay/handshake/1.0.0"

// Version is the handshake protocol version this build speaks.
//
// Version history:
//
//	1  first version: hello, accept, reject frames; JSON hello with an
//	   optional network-key proof.
//	2  reject frame 0x04 carries a reason code and the refuser's own values
//	   (network, accepted versions), so the refused side words the refusal
//	   for itself; sent only to peers whose hello says version >= 2, older
//	   peers still get 0x03 text.
//	3  certificate mode: the hello carries the member's certificate
//	   (field "cert", a raw cert/ document of at most MaxCertSize bytes),
//	   and refusals gain the certificate codes (cert-*). A version 2 node
//	   refuses a version 3 hello (CodeVersion, which it words itself); a
//	   version 2 hello reaches a certificate-mode node without a
//	   certificate and is refused with CodeCertRequired in frame 0x04,
//	   which a version 2 node reads as text (CodeOther).
const Version = 3

// MinVersion is the oldest peer version this build accepts.
const MinVersion = 1

// Protocol flow, one stream per connection, opened by the side that dialed:
//
//	initiator                          responder
//	  hello  ------------------------->  check
//	         <-------------------------  hello   (or reject, then close)
//	  check
//	  accept ------------------------->          (or reject, then close)
//
// Both sides run under HandshakeTimeout. A side that sends reject closes the
// connection once the reason is written, so the other side learns why.
//
// Reject is frame 0x04 to a peer whose hello says version >= 2 and frame
// 0x03 to an older one; a reader accepts both. Frame types are never
// reused, so every later version on this HandshakeID reads 0x03 and 0x04.
const (
	frameHello      = 0x01 // JSON Hello, at most MaxHelloSize bytes
	frameAccept     = 0x02 // empty payload
	frameReject     = 0x03 // UTF-8 reason, at most MaxReasonSize bytes
	frameRejectCode = 0x04 // JSON {"code","reason","network","min_version","max_version"}, at most MaxRefusalSize bytes

	codedRejectVersion = 2 // the first version that reads frame 0x04
)

// Size caps of the handshake decoder.
const (
	MaxHelloSize   = 32 << 10
	MaxReasonSize  = 512     // a reason, as text (0x03) or in a refusal (0x04)
	MaxRefusalSize = 1 << 10 // a whole 0x04 payload
	MaxAddrs       = 64
	maxNetworkLen  = 64
	maxAgentLen    = 128
	maxProofLen    = 64
	maxCodeLen     = 32 // a RejectCode in 0x04
	// MaxCertSize caps the certificate a hello carries: a certificate's
	// largest body plus its header and signature (cert.MaxCertificateBody).
	MaxCertSize = cert.MaxCertificateBody + 8 + 64
)

// HandshakeTimeout bounds the whole handshake on one stream.
const HandshakeTimeout = 10 * time.Second

// Role is what a node is in the overlay.
type Role string

const (
	RolePublic  Role = "public"  // reachable; relays for others
	RolePrivate Role = "private" // reachable only through relays
)

// Hello is what each side tells the other about itself.
type Hello struct {
	Network string         `json:"network"`
	Version int            `json:"version"`
	Role    Role           `json:"role"`
	Agent   string         `json:"agent"`
	Direct  []ma.Multiaddr `json:"-"`
	Relayed []ma.Multiaddr `json:"-"`
	// Proof is HMAC-SHA256 under the network key, present when the network
	// has one (see NetworkProof).
	Proof []byte `json:"-"`
	// Cert is the sender's member certificate (a raw cert/ document), in
	// a certificate-mode network; see Certificate.
	Cert []byte `json:"-"`
}

// Certificate parses the certificate h carries: nil and no error when it
// carries none. The form is checked, not the signature or the binding:
// Certificate.Verify does.
func (h Hello) Certificate() (*cert.Certificate, error) {
	if len(h.Cert) == 0 {
		return nil, nil
	}
	if len(h.Cert) > MaxCertSize {
		return nil, fmt.Errorf("%w: certificate of %d bytes, cap %d", cert.ErrMalformed, len(h.Cert), MaxCertSize)
	}
	return cert.ParseCertificate(h.Cert)
}

// helloWire is Hello as it is sent: addresses as strings.
type helloWire struct {
	Network string   `json:"network"`
	Version int      `json:"version"`
	Role    Role     `json:"role"`
	Agent   string   `json:"agent"`
	Direct  []string `json:"direct,omitempty"`
	Relayed []string `json:"relayed,omitempty"`
	Proof   []byte   `json:"proof,omitempty"`
	Cert    []byte   `json:"cert,omitempty"`
}

// Sentinel errors of the handshake.
var (
	ErrNetworkMismatch = errors.New("network mismatch")
	ErrVersionMismatch = errors.New("incompatible version")
	ErrMalformed       = errors.New("malformed handshake")
	ErrNetworkKey      = errors.New("network key mismatch")
)

// RejectedError reports a handshake that one side refused.
type RejectedError struct {
	Reason string // the refuser's wording
	ByPeer bool   // the remote side refused us; else we refused it
	// Refusal is never nil: the refusal we sent, or the one the peer sent
	// (for a 0x03 text reject, CodeOther with the text as Reason).
	Refusal *Refusal
}

func (e *RejectedError) Error() string {
	if e.ByPeer {
		return "rejected by peer: " + e.Reason
	}
	return "rejected peer: " + e.Reason
}

// Unwrap returns the Refusal, so that errors.Is(err, ErrNetworkMismatch) and
// the like hold on both sides when the refusal's code says so.
func (e *RejectedError) Unwrap() error {
	if e.Refusal == nil {
		return nil
	}
	return e.Refusal
}

// EncodeHello returns the wire payload of h.
func EncodeHello(h Hello) ([]byte, error) {
	w := helloWire{Network: h.Network, Version: h.Version, Role: h.Role, Agent: h.Agent,
		Direct: addrStrings(h.Direct), Relayed: addrStrings(h.Relayed), Proof: h.Proof, Cert: h.Cert}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxHelloSize {
		return nil, fmt.Errorf("hello is %d bytes, cap %d", len(b), MaxHelloSize)
	}
	return b, nil
}

// DecodeHello parses and validates a hello payload.
func DecodeHello(b []byte) (Hello, error) {
	if len(b) > MaxHelloSize {
		return Hello{}, fmt.Errorf("%w: hello of %d bytes", ErrMalformed, len(b))
	}
	var w helloWire
	if err := json.Unmarshal(b, &w); err != nil {
		return Hello{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(w.Network) == 0 || len(w.Network) > maxNetworkLen {
		return Hello{}, fmt.Errorf("%w: network name of %d bytes", ErrMalformed, len(w.Network))
	}
	if len(w.Agent) > maxAgentLen {
		return Hello{}, fmt.Errorf("%w: agent of %d bytes", ErrMalformed, len(w.Agent))
	}
	if w.Role != RolePublic && w.Role != RolePrivate {
		return Hello{}, fmt.Errorf("%w: unknown role %q", ErrMalformed, truncate(string(w.Role), 32))
	}
	if len(w.Proof) > maxProofLen {
		return Hello{}, fmt.Errorf("%w: proof of %d bytes", ErrMalformed, len(w.Proof))
	}
	if len(w.Cert) > MaxCertSize {
		return Hello{}, fmt.Errorf("%w: certificate of %d bytes, cap %d", ErrMalformed, len(w.Cert), MaxCertSize)
	}
	h := Hello{Network: w.Network, Version: w.Version, Role: w.Role, Agent: w.Agent, Proof: w.Proof, Cert: w.Cert}
	var err error
	if h.Direct, err = parseAddrs(w.Direct); err != nil {
		return Hello{}, err
	}
	if h.Relayed, err = parseAddrs(w.Relayed); err != nil {
		return Hello{}, err
	}
	return h, nil
}

// Check tells whether remote may join local's network. A refusal is a
// *Refusal (CodeNetwork or CodeVersion) with local's values and a reason
// that names what differs; errors.Is matches ErrNetworkMismatch or
// ErrVersionMismatch.
func Check(local, remote Hello) error {
	r := &Refusal{Network: local.Network, MinVersion: MinVersion, MaxVersion: Version}
	switch {
	case remote.Network != local.Network:
		r.Code, r.err = CodeNetwork, ErrNetworkMismatch
		r.Reason = fmt.Sprintf("%v: peer is on %q, this node is on %q", ErrNetworkMismatch, remote.Network, local.Network)
	case remote.Version < MinVersion || remote.Version > Version:
		r.Code, r.err = CodeVersion, ErrVersionMismatch
		r.Reason = fmt.Sprintf("%v: peer speaks version %d, this node accepts %d to %d",
			ErrVersionMismatch, remote.Version, MinVersion, Version)
	default:
		return nil
	}
	return r
}

// Deadliner is a stream whose reads and writes can be bounded in time.
type Deadliner interface {
	io.ReadWriter
	SetDeadline(time.Time) error
}

// Checker decides whether the remote hello is admitted; nil means Check.
// A refusal is best a *Refusal; any other error is sent as CodeOther with
// its text. Network and versions a *Refusal leaves zero are filled with the
// local hello's network and MinVersion to Version.
type Checker func(remote Hello) error

// Initiate runs the handshake as the dialing side. local.Version is sent as is,
// so that a test can pose as another version.
func Initiate(s Deadliner, local Hello) (Hello, error) { return InitiateWith(s, local, nil) }

// Respond runs the handshake as the side that accepted the stream.
func Respond(s Deadliner, local Hello) (Hello, error) { return RespondWith(s, local, nil) }

// InitiateWith is Initiate with a custom admission check.
func InitiateWith(s Deadliner, local Hello, check Checker) (Hello, error) {
	_ = s.SetDeadline(time.Now().Add(HandshakeTimeout))
	defer s.SetDeadline(time.Time{})
	if err := sendHello(s, local); err != nil {
		return Hello{}, err
	}
	remote, err := readHello(s)
	if err != nil {
		return Hello{}, err
	}
	if err := verdict(s, local, remote, check); err != nil {
		return remote, err
	}
	return remote, WriteFrame(s, frameAccept)
}

// RespondWith is Respond with a custom admission check.
func RespondWith(s Deadliner, local Hello, check Checker) (Hello, error) {
	_ = s.SetDeadline(time.Now().Add(HandshakeTimeout))
	defer s.SetDeadline(time.Time{})
	remote, err := readHello(s)
	if err != nil {
		return Hello{}, err
	}
	if err := verdict(s, local, remote, check); err != nil {
		return remote, err
	}
	if err := sendHello(s, local); err != nil {
		return remote, err
	}
	typ, payload, err := ReadFrame(s, MaxRefusalSize)
	if err != nil {
		return remote, fmt.Errorf("read accept: %w", err)
	}
	switch typ {
	case frameAccept:
		return remote, nil
	case frameReject, frameRejectCode:
		return remote, refusedBy(typ, payload)
	default:
		return remote, fmt.Errorf("%w: frame type %#x where accept was due", ErrMalformed, typ)
	}
}

// verdict checks remote and, on refusal, tells the peer why: in frame 0x04
// if its hello says it reads that, else as 0x03 text.
func verdict(s io.Writer, local, remote Hello, check Checker) error {
	var err error
	if check != nil {
		err = check(remote)
	} else {
		err = Check(local, remote)
	}
	if err == nil {
		return nil
	}
	r := refusalOf(err, local)
	b, encErr := EncodeRefusal(r)
	if remote.Version >= codedRejectVersion && encErr == nil {
		_ = WriteFrame(s, frameRejectCode, b)
	} else {
		_ = WriteFrame(s, frameReject, []byte(r.Reason))
	}
	return &RejectedError{Reason: r.Reason, Refusal: r}
}

// refusedBy reads a peer's reject frame of either type.
func refusedBy(typ byte, payload []byte) error {
	var r *Refusal
	if typ == frameReject {
		r = &Refusal{Code: CodeOther, Reason: cleanReason(payload)}
	} else {
		var err error
		if r, err = DecodeRefusal(payload); err != nil {
			return fmt.Errorf("read reject: %w", err)
		}
	}
	return &RejectedError{Reason: r.Reason, ByPeer: true, Refusal: r}
}

func sendHello(w io.Writer, h Hello) error {
	b, err := EncodeHello(h)
	if err != nil {
		return fmt.Errorf("encode hello: %w", err)
	}
	if err := WriteFrame(w, frameHello, b); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	return nil
}

func readHello(r io.Reader) (Hello, error) {
	typ, payload, err := ReadFrame(r, MaxHelloSize)
	if err != nil {
		return Hello{}, fmt.Errorf("read hello: %w", err)
	}
	switch typ {
	case frameHello:
		return DecodeHello(payload)
	case frameReject, frameRejectCode:
		return Hello{}, refusedBy(typ, payload)
	default:
		return Hello{}, fmt.Errorf("%w: frame type %#x where hello was due", ErrMalformed, typ)
	}
}

func parseAddrs(ss []string) ([]ma.Multiaddr, error) {
	if len(ss) > MaxAddrs {
		return nil, fmt.Errorf("%w: %d addresses, cap %d", ErrMalformed, len(ss), MaxAddrs)
	}
	out := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: address %q: %v", ErrMalformed, truncate(s, 64), err)
		}
		out = append(out, a)
	}
	return out, nil
}

func addrStrings(as []ma.Multiaddr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// cleanReason keeps a peer's reason printable, valid UTF-8 and within
// MaxReasonSize, so it cannot forge log lines or outgrow its cap. Control
// characters (C0, DEL and C1, which holds the 8-bit terminal escapes)
// become spaces.
func cleanReason(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(string(b), "?"))
	for len(s) > MaxReasonSize {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// NetworkProof proves knowledge of a network key to one peer: HMAC-SHA256
// over a label and both peer IDs. The secure channel authenticates both IDs,
// so a proof made for one peer is worth nothing to any other.
func NetworkProof(key []byte, from, to peer.ID) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("overlay handshake proof v1\x00"))
	m.Write([]byte(from))
	m.Write([]byte{0})
	m.Write([]byte(to))
	return m.Sum(nil)
}

// CheckProof verifies the remote side's proof of the network key. A refusal
// is a *Refusal (CodeNoKey or CodeWrongKey; errors.Is matches ErrNetworkKey)
// whose Network and versions are left empty: a Checker that returns it has
// them filled from the local hello before it is sent.
func CheckProof(key []byte, remote Hello, remoteID, localID peer.ID) error {
	if len(remote.Proof) == 0 {
		return &Refusal{Code: CodeNoKey, err: ErrNetworkKey,
			Reason: fmt.Sprintf("%v: peer proved no network key, this network has one", ErrNetworkKey)}
	}
	if !hmac.Equal(remote.Proof, NetworkProof(key, remoteID, localID)) {
		return &Refusal{Code: CodeWrongKey, err: ErrNetworkKey,
			Reason: fmt.Sprintf("%v: peer holds another network key", ErrNetworkKey)}
	}
	return nil
}
