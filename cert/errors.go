package cert

import "errors"

// Sentinel errors: why a document was refused. Errors returned by this
// package wrap exactly one of them (test with errors.Is), with details.
var (
	ErrMalformed    = errors.New("malformed")
	ErrUnknownCA    = errors.New("signed by an unknown CA")
	ErrBadSignature = errors.New("bad CA signature")
	ErrNotYetValid  = errors.New("certificate not yet valid")
	ErrExpired      = errors.New("certificate expired")
	ErrPeerMismatch = errors.New("certificate peer ID mismatch")
	ErrRevoked      = errors.New("certificate revoked")
)

// Reason is a stable code for why a certificate was refused, for refusal
// frames, logs and metric labels: the set is closed, so a typo cannot mint
// a new label. The values start with "cert-" so that they can sit beside
// the handshake's own refusal codes (protocol.RejectCode) without clashing.
type Reason string

const (
	ReasonNone         Reason = ""
	ReasonMalformed    Reason = "cert-malformed"
	ReasonUnknownCA    Reason = "cert-unknown-ca"
	ReasonBadSignature Reason = "cert-bad-signature"
	ReasonNotYetValid  Reason = "cert-not-yet-valid"
	ReasonExpired      Reason = "cert-expired"
	ReasonPeerMismatch Reason = "cert-peer-mismatch"
	ReasonRevoked      Reason = "cert-revoked"
)

// Reasons lists every refusal reason, for metrics that count each.
var Reasons = []Reason{
	ReasonMalformed, ReasonUnknownCA, ReasonBadSignature, ReasonNotYetValid,
	ReasonExpired, ReasonPeerMismatch, ReasonRevoked,
}

var reasonErrs = map[Reason]error{
	ReasonMalformed:    ErrMalformed,
	ReasonUnknownCA:    ErrUnknownCA,
	ReasonBadSignature: ErrBadSignature,
	ReasonNotYetValid:  ErrNotYetValid,
	ReasonExpired:      ErrExpired,
	ReasonPeerMismatch: ErrPeerMismatch,
	ReasonRevoked:      ErrRevoked,
}

// ReasonOf returns the reason err carries: ReasonNone for nil, and
// ReasonMalformed for an error of no known reason.
func ReasonOf(err error) Reason {
	if err == nil {
		return ReasonNone
	}
	for _, r := range Reasons {
		if errors.Is(err, reasonErrs[r]) {
			return r
		}
	}
	return ReasonMalformed
}

// Err returns the sentinel error of r, nil for ReasonNone or an unknown r.
func (r Reason) Err() error { return reasonErrs[r] }
