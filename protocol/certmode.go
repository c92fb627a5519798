package protocol

import (
	"errors"
	"fmt"

	"github.com/overlay-net/overlay/cert"
)

// Refusal codes of certificate mode (handshake version 3). The codes of a
// refused certificate are cert's Reasons, so that logs, metrics and frames
// say the same; the two mode codes are the handshake's own.
const (
	CodeCertMalformed    = RejectCode(cert.ReasonMalformed)
	CodeCertUnknownCA    = RejectCode(cert.ReasonUnknownCA)
	CodeCertBadSignature = RejectCode(cert.ReasonBadSignature)
	CodeCertNotYetValid  = RejectCode(cert.ReasonNotYetValid)
	CodeCertExpired      = RejectCode(cert.ReasonExpired)
	CodeCertPeerMismatch = RejectCode(cert.ReasonPeerMismatch)
	CodeCertRevoked      = RejectCode(cert.ReasonRevoked)
	// CodeCertRequired: the refuser's network runs in certificate mode and
	// the peer presented no certificate.
	CodeCertRequired RejectCode = "cert-required"
	// CodeCertUnused: the refuser's network does not run in certificate
	// mode and the peer presented a certificate.
	CodeCertUnused RejectCode = "cert-unused"
)

// Sentinel errors of the certificate mode checks (the refused certificate's
// own are cert's: cert.ErrExpired and the like).
var (
	ErrCertRequired = errors.New("certificate required")
	ErrCertUnused   = errors.New("certificate mode not used here")
)

// CertCodes are every certificate-mode refusal code, for metrics that count
// each.
var CertCodes = []RejectCode{
	CodeCertMalformed, CodeCertUnknownCA, CodeCertBadSignature, CodeCertNotYetValid,
	CodeCertExpired, CodeCertPeerMismatch, CodeCertRevoked, CodeCertRequired, CodeCertUnused,
}

func isCertCode(c RejectCode) bool {
	for _, k := range CertCodes {
		if c == k {
			return true
		}
	}
	return false
}

// certSentinel is the error a certificate code stands for.
func certSentinel(c RejectCode) error {
	switch c {
	case CodeCertRequired:
		return ErrCertRequired
	case CodeCertUnused:
		return ErrCertUnused
	}
	return cert.Reason(c).Err()
}

// CertRefusal is the refusal of a peer whose certificate failed err (from
// Hello.Certificate, Certificate.Verify or a revocation check): its code is
// cert.ReasonOf(err), its reason the refuser's wording, and errors.Is sees
// err.
func CertRefusal(err error) *Refusal {
	return &Refusal{Code: RejectCode(cert.ReasonOf(err)), Reason: "peer's certificate refused: " + err.Error(), err: err}
}

// CheckCertMode refuses a peer whose hello does not match this node's mode:
// a node in certificate mode (certMode, its CA's fingerprint ca) requires a
// certificate, and any other node refuses one. The reason is worded so that
// it reads right on both sides, for a version 2 peer shows it as text.
func CheckCertMode(certMode bool, ca string, remote Hello) error {
	switch {
	case certMode && len(remote.Cert) == 0:
		why := ""
		if remote.Version < 3 {
			why = fmt.Sprintf("; handshake version %d cannot carry one: upgrade", remote.Version)
		}
		return &Refusal{Code: CodeCertRequired, err: ErrCertRequired, Reason: fmt.Sprintf(
			"%v: this network runs in certificate mode (CA %s) and admits no node without a member certificate%s",
			ErrCertRequired, ca, why)}
	case !certMode && len(remote.Cert) > 0:
		return &Refusal{Code: CodeCertUnused, err: ErrCertUnused, Reason: fmt.Sprintf(
			"%v: this network does not run in certificate mode and admits no node that presents a certificate", ErrCertUnused)}
	}
	return nil
}

// explainCert words a certificate refusal from the refused side.
func (r *Refusal) explainCert(who string) string {
	switch r.Code {
	case CodeCertRequired:
		return fmt.Sprintf("%v: %s runs in certificate mode; this node has no certificate (--ca-pub FILE --cert FILE)", ErrCertRequired, who)
	case CodeCertUnused:
		return fmt.Sprintf("%v: %s does not run in certificate mode; this node presents a certificate (drop --cert and --ca-pub to join it)", ErrCertUnused, who)
	case CodeCertExpired:
		return fmt.Sprintf("%v: %s refused this node's certificate, which has expired; renew it (overlay ca sign) and put it in place of the --cert file", cert.ErrExpired, who)
	case CodeCertNotYetValid:
		return fmt.Sprintf("%v: %s says this node's certificate is not valid yet (check both clocks)", cert.ErrNotYetValid, who)
	case CodeCertRevoked:
		return fmt.Sprintf("%v: %s holds a revocation list that revokes this node's certificate", cert.ErrRevoked, who)
	case CodeCertUnknownCA:
		return fmt.Sprintf("%v: %s trusts another CA than the one that signed this node's certificate", cert.ErrUnknownCA, who)
	case CodeCertBadSignature:
		return fmt.Sprintf("%v: %s found this node's certificate not signed by its CA (tampered, or signed by another key)", cert.ErrBadSignature, who)
	case CodeCertPeerMismatch:
		return fmt.Sprintf("%v: %s says this node's certificate was issued for another peer ID (sign one for this node's)", cert.ErrPeerMismatch, who)
	}
	return fmt.Sprintf("%s could not read this node's certificate: %s", who, r.Reason)
}
