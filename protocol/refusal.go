package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// RejectCode says which check refused a peer. It travels in frame 0x04; a
// reader maps a code it does not know to CodeOther.
type RejectCode string

const (
	CodeNetwork   RejectCode = "network"   // other network name
	CodeVersion   RejectCode = "version"   // version outside the refuser's range
	CodeNoKey     RejectCode = "no-key"    // the refuser's network has a key; the peer proved none
	CodeWrongKey  RejectCode = "wrong-key" // the peer's proof is for another key
	CodeMalformed RejectCode = "malformed" // the refuser could not read the peer's handshake
	CodeOther     RejectCode = "other"     // anything else; Reason says what
)

// Refusal is why one side refused the other, with the refuser's values, so
// that the refused side can word the refusal for itself (see Explain).
type Refusal struct {
	Code                   RejectCode
	Network                string // the refuser's network
	MinVersion, MaxVersion int    // versions the refuser accepts
	Reason                 string // the refuser's own wording (logged on its side; shown to old peers)

	// err is what errors.Is sees through Unwrap: the checker's own error
	// for a refusal made here, else nil and the sentinel of Code.
	err error
}

// Error is the refuser's wording.
func (r *Refusal) Error() string {
	if r.Reason == "" {
		return "refused: " + string(r.Code)
	}
	return r.Reason
}

// Unwrap returns the sentinel of the code (ErrNetworkMismatch,
// ErrVersionMismatch, ErrNetworkKey, ErrMalformed; none for CodeOther), or
// the error the refusal was made from.
func (r *Refusal) Unwrap() error {
	if r.err != nil {
		return r.err
	}
	return codeSentinel(r.Code)
}

func codeSentinel(c RejectCode) error {
	switch c {
	case CodeNetwork:
		return ErrNetworkMismatch
	case CodeVersion:
		return ErrVersionMismatch
	case CodeNoKey, CodeWrongKey:
		return ErrNetworkKey
	case CodeMalformed:
		return ErrMalformed
	}
	if isCertCode(c) {
		return certSentinel(c)
	}
	return nil
}

// knownCode returns c, or CodeOther if this build does not know c.
func knownCode(c RejectCode) RejectCode {
	switch c {
	case CodeNetwork, CodeVersion, CodeNoKey, CodeWrongKey, CodeMalformed, CodeOther:
		return c
	}
	if isCertCode(c) {
		return c
	}
	return CodeOther
}

// Explain words a refusal from the refused side's point of view. who names
// the refuser ("the relay", "the peer"); self is the refused node's own hello.
func (r *Refusal) Explain(who string, self Hello) string {
	if r == nil {
		return who + " refused this node"
	}
	switch r.Code {
	case CodeNetwork:
		if r.Network == "" {
			return fmt.Sprintf("%s is on another network, this node is on %q", who, self.Network)
		}
		return fmt.Sprintf("%s is on network %q, this node is on %q", who, r.Network, self.Network)
	case CodeVersion:
		switch {
		case r.MinVersion == 0 && r.MaxVersion == 0:
			return fmt.Sprintf("%s does not accept handshake version %d, which this node speaks", who, self.Version)
		case r.MinVersion == r.MaxVersion:
			return fmt.Sprintf("%s accepts handshake version %d only, this node speaks %d", who, r.MinVersion, self.Version)
		}
		return fmt.Sprintf("%s accepts handshake versions %d to %d, this node speaks %d", who, r.MinVersion, r.MaxVersion, self.Version)
	case CodeNoKey:
		return fmt.Sprintf("%s's network requires a network key, this node has none", who)
	case CodeWrongKey:
		return fmt.Sprintf("this node holds another network key than %s", who)
	case CodeMalformed:
		return fmt.Sprintf("%s could not read this node's handshake: %s", who, r.Reason)
	}
	if isCertCode(r.Code) {
		return r.explainCert(who)
	}
	if r.Reason == "" {
		return who + " refused this node without a reason"
	}
	return fmt.Sprintf("%s said: %s", who, r.Reason)
}

// refusalWire is the payload of frame 0x04. Every field is always present;
// a reader ignores fields it does not know, so later versions may add some.
type refusalWire struct {
	Code       RejectCode `json:"code"`        // at most maxCodeLen bytes, never empty
	Reason     string     `json:"reason"`      // at most MaxReasonSize bytes
	Network    string     `json:"network"`     // at most maxNetworkLen bytes; may be empty
	MinVersion int        `json:"min_version"` // 0 <= min_version <= max_version
	MaxVersion int        `json:"max_version"`
}

// EncodeRefusal returns the wire payload of frame 0x04 for r: at most
// MaxRefusalSize bytes, the reason cleaned and cut to fit, a code this build
// does not know sent as CodeOther.
func EncodeRefusal(r *Refusal) ([]byte, error) {
	if r == nil {
		return nil, errors.New("encode refusal: nil")
	}
	if len(r.Network) > maxNetworkLen {
		return nil, fmt.Errorf("encode refusal: network name of %d bytes, cap %d", len(r.Network), maxNetworkLen)
	}
	if r.MinVersion < 0 || r.MaxVersion < r.MinVersion {
		return nil, fmt.Errorf("encode refusal: version range %d to %d", r.MinVersion, r.MaxVersion)
	}
	w := refusalWire{Code: knownCode(r.Code), Reason: cleanReason([]byte(r.Reason)), Network: r.Network,
		MinVersion: r.MinVersion, MaxVersion: r.MaxVersion}
	for {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(w); err != nil {
			return nil, fmt.Errorf("encode refusal: %w", err)
		}
		b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		excess := len(b) - MaxRefusalSize
		if excess <= 0 {
			return b, nil
		}
		// Escaping only grows a rune, so cutting excess bytes of the
		// reason shrinks the payload by at least excess.
		if excess > len(w.Reason) {
			return nil, fmt.Errorf("encode refusal: %d bytes, cap %d", len(b), MaxRefusalSize)
		}
		n := len(w.Reason) - excess
		for n > 0 && !utf8.RuneStart(w.Reason[n]) {
			n--
		}
		w.Reason = w.Reason[:n]
	}
}

// DecodeRefusal parses and validates the payload of frame 0x04. The reason
// is cleaned as a text reason is; an unknown code becomes CodeOther.
func DecodeRefusal(b []byte) (*Refusal, error) {
	if len(b) > MaxRefusalSize {
		return nil, fmt.Errorf("%w: refusal of %d bytes", ErrMalformed, len(b))
	}
	var w refusalWire
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: refusal: %v", ErrMalformed, err)
	}
	if len(w.Code) == 0 || len(w.Code) > maxCodeLen {
		return nil, fmt.Errorf("%w: refusal code of %d bytes", ErrMalformed, len(w.Code))
	}
	if len(w.Reason) > MaxReasonSize {
		return nil, fmt.Errorf("%w: refusal reason of %d bytes", ErrMalformed, len(w.Reason))
	}
	if len(w.Network) > maxNetworkLen {
		return nil, fmt.Errorf("%w: refusal network name of %d bytes", ErrMalformed, len(w.Network))
	}
	if w.MinVersion < 0 || w.MaxVersion < w.MinVersion {
		return nil, fmt.Errorf("%w: refusal version range %d to %d", ErrMalformed, w.MinVersion, w.MaxVersion)
	}
	return &Refusal{Code: knownCode(w.Code), Network: w.Network,
		MinVersion: w.MinVersion, MaxVersion: w.MaxVersion, Reason: cleanReason([]byte(w.Reason))}, nil
}

// refusalOf turns a checker's error into the refusal sent for it, filled
// with local's values where the checker left them out.
func refusalOf(err error, local Hello) *Refusal {
	var r Refusal
	var ref *Refusal
	if errors.As(err, &ref) {
		r = *ref
	} else {
		r = Refusal{Code: CodeOther, Reason: err.Error(), err: err}
	}
	r.Code = knownCode(r.Code)
	if r.Reason == "" {
		r.Reason = r.Error()
	}
	r.Reason = cleanReason([]byte(r.Reason))
	if r.Network == "" {
		r.Network = local.Network
	}
	if r.MinVersion == 0 && r.MaxVersion == 0 {
		r.MinVersion, r.MaxVersion = MinVersion, Version
	}
	return &r
}
