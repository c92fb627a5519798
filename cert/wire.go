// Package cert holds the documents of a network run with a certificate
// authority (CA): member certificates, the revocation list and the access
// policy. All three are signed by the CA's ed25519 key and share one
// envelope; the CA's private key signs them offline and no node needs it.
package cert

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
)

// Every document is one envelope, the same for the three kinds:
//
//	offset  size  field
//	0       2     magic "ov" (0x6f 0x76)
//	2       1     kind: 0x01 certificate, 0x02 revocation list, 0x03 policy
//	3       1     format version of that kind (FormatVersion)
//	4       4     N, the body length, big-endian; at most the kind's cap
//	8       N     body: one JSON object (UTF-8) in canonical form, whose
//	              fields each kind documents at its type
//	8+N     64    ed25519 signature by the CA over SignContext || bytes [0, 8+N)
//
// Canonical form: the fields in the documented order, no whitespace, an
// absent optional field omitted (not null, empty or false), strings escaped
// as Go's encoding/json writes them. A reader re-encodes what it decoded and
// refuses a body that differs, so every document has exactly one encoding:
// no duplicate or differently-cased keys, no unknown fields, nothing for two
// parsers to read differently.
//
// The document is exactly 72+N bytes: nothing may follow the signature. The
// kind and version are signed with the body, so a signed revocation list
// cannot pass for a certificate, nor a body for another version's. A reader
// checks the length against the kind's cap before it allocates or decodes.
//
// Format version history (one counter per kind; a new field or a new
// meaning bumps it, and a reader refuses versions it does not know rather
// than ignore a field that might restrict a member):
//
//	certificate 1      serial, peer, name, groups, not_before, not_after,
//	                   optional ipv4/ipv6 overlay addresses, ca
//	revocation list 1  version, issued, serials, peers, ca
//	policy 1           version, issued, default, rules (with an optional
//	                   relay field, added before any release), ca
//
// Files hold a document PEM-armoured (see PEMType); the handshake carries
// the raw bytes.
const (
	magic0, magic1 = 'o', 'v'

	KindCertificate byte = 0x01
	KindRevocations byte = 0x02
	KindPolicy      byte = 0x03

	// FormatVersion is the only format version of each kind this build
	// reads and writes.
	FormatVersion byte = 1

	headerSize    = 8
	signatureSize = ed25519.SignatureSize
)

// SignContext is prepended to every signed byte string, so that a CA
// signature over a document can never be taken for one over anything else
// signed with the same key.
const SignContext = "overlay-net CA signed document\x00"

// Caps on the body length of each kind, checked before anything is
// allocated. A certificate travels in every handshake, so it stays small;
// lists and policies are spread through the overlay.
const (
	MaxCertificateBody = 4 << 10
	MaxRevocationsBody = 512 << 10
	MaxPolicyBody      = 256 << 10
)

// MaxFileSize caps a document file (PEM armour included) before it is read.
const MaxFileSize = 1 << 20

// PEM block types of the files 'overlay ca' writes.
const (
	PEMCertificate = "OVERLAY CERTIFICATE"
	PEMRevocations = "OVERLAY REVOCATION LIST"
	PEMPolicy      = "OVERLAY POLICY"
	PEMCAPublic    = "OVERLAY CA PUBLIC KEY"
	PEMCAPrivate   = "OVERLAY CA PRIVATE KEY"
)

// KindName names a document kind for people.
func KindName(kind byte) string {
	switch kind {
	case KindCertificate:
		return "certificate"
	case KindRevocations:
		return "revocation list"
	case KindPolicy:
		return "policy"
	}
	return fmt.Sprintf("unknown kind 0x%02x", kind)
}

// PEMType is the PEM block type of a document kind.
func PEMType(kind byte) string {
	switch kind {
	case KindCertificate:
		return PEMCertificate
	case KindRevocations:
		return PEMRevocations
	case KindPolicy:
		return PEMPolicy
	}
	return ""
}

func maxBody(kind byte) int {
	switch kind {
	case KindCertificate:
		return MaxCertificateBody
	case KindRevocations:
		return MaxRevocationsBody
	case KindPolicy:
		return MaxPolicyBody
	}
	return 0
}

// envelope is a decoded document: its signed bytes, the body within them,
// and the signature.
type envelope struct {
	signed []byte // bytes [0, 8+N)
	body   []byte // bytes [8, 8+N), within signed
	sig    []byte
}

// Kind returns the kind byte of the document b (raw, not PEM), or an error
// if b is too short or lacks the magic.
func Kind(b []byte) (byte, error) {
	if len(b) < headerSize+signatureSize {
		return 0, fmt.Errorf("%w: %d bytes, shorter than any document", ErrMalformed, len(b))
	}
	if b[0] != magic0 || b[1] != magic1 {
		return 0, fmt.Errorf("%w: not an overlay CA document (bad magic)", ErrMalformed)
	}
	return b[2], nil
}

// open checks the envelope of a document of the wanted kind: magic, kind,
// version, body length against the cap and the total length. It allocates
// nothing; the returned slices alias b.
func open(b []byte, kind byte) (envelope, error) {
	k, err := Kind(b)
	if err != nil {
		return envelope{}, err
	}
	if k != kind {
		return envelope{}, fmt.Errorf("%w: a %s, not a %s", ErrMalformed, KindName(k), KindName(kind))
	}
	if v := b[3]; v != FormatVersion {
		return envelope{}, fmt.Errorf("%w: %s format version %d; this build reads %d", ErrMalformed, KindName(kind), v, FormatVersion)
	}
	n := binary.BigEndian.Uint32(b[4:8])
	if max := maxBody(kind); n > uint32(max) {
		return envelope{}, fmt.Errorf("%w: %s body of %d bytes over cap %d", ErrMalformed, KindName(kind), n, max)
	}
	if uint64(len(b)) != headerSize+uint64(n)+signatureSize {
		return envelope{}, fmt.Errorf("%w: %s of %d bytes; its header says %d", ErrMalformed, KindName(kind), len(b), headerSize+uint64(n)+signatureSize)
	}
	end := headerSize + int(n)
	return envelope{signed: b[:end:end], body: b[headerSize:end:end], sig: b[end:]}, nil
}

// seal encodes body as a document of kind and signs it with key.
func seal(kind byte, body any, key ed25519.PrivateKey) (envelope, []byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return envelope{}, nil, fmt.Errorf("sign %s: CA private key of %d bytes, want %d", KindName(kind), len(key), ed25519.PrivateKeySize)
	}
	js, err := json.Marshal(body)
	if err != nil {
		return envelope{}, nil, fmt.Errorf("encode %s: %w", KindName(kind), err)
	}
	if max := maxBody(kind); len(js) > max {
		return envelope{}, nil, fmt.Errorf("encode %s: body of %d bytes over cap %d", KindName(kind), len(js), max)
	}
	b := make([]byte, headerSize, headerSize+len(js)+signatureSize)
	b[0], b[1], b[2], b[3] = magic0, magic1, kind, FormatVersion
	binary.BigEndian.PutUint32(b[4:8], uint32(len(js)))
	b = append(b, js...)
	b = append(b, ed25519.Sign(key, signedMessage(b))...)
	env, err := open(b, kind)
	return env, b, err
}

// signedMessage is what the CA signs for a document whose signed bytes are b.
func signedMessage(b []byte) []byte {
	m := make([]byte, 0, len(SignContext)+len(b))
	return append(append(m, SignContext...), b...)
}

// check verifies the envelope's signature by ca.
func (e envelope) check(ca ed25519.PublicKey) bool {
	return len(ca) == ed25519.PublicKeySize && ed25519.Verify(ca, signedMessage(e.signed), e.sig)
}

// decodeBody decodes a body strictly into v, a pointer to a wire struct:
// one JSON object, no unknown field, nothing after it, in canonical form.
func decodeBody(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", ErrMalformed, err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: body: data after the JSON object", ErrMalformed)
	}
	again, err := json.Marshal(v)
	if err != nil || !bytes.Equal(again, body) {
		return fmt.Errorf("%w: body not in canonical form", ErrMalformed)
	}
	return nil
}

// Decode returns the raw document in b, which is either raw or one PEM
// block of a document type, and its kind.
func Decode(b []byte) (kind byte, doc []byte, err error) {
	if len(b) > MaxFileSize {
		return 0, nil, fmt.Errorf("%w: %d bytes over cap %d", ErrMalformed, len(b), MaxFileSize)
	}
	if len(b) >= 2 && b[0] == magic0 && b[1] == magic1 {
		k, err := Kind(b)
		if err == nil && PEMType(k) == "" {
			err = fmt.Errorf("%w: %s", ErrMalformed, KindName(k))
		}
		if err != nil {
			return 0, nil, err
		}
		return k, b, nil
	}
	blk, rest := pem.Decode(b)
	if blk == nil {
		return 0, nil, fmt.Errorf("%w: neither a PEM block nor a raw document", ErrMalformed)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return 0, nil, fmt.Errorf("%w: data after the PEM block", ErrMalformed)
	}
	k, err := Kind(blk.Bytes)
	if err != nil {
		return 0, nil, err
	}
	if want := PEMType(k); want == "" || blk.Type != want {
		return 0, nil, fmt.Errorf("%w: PEM block %q holds a %s", ErrMalformed, blk.Type, KindName(k))
	}
	return k, blk.Bytes, nil
}

// EncodePEM armours a raw document for a file.
func EncodePEM(doc []byte) ([]byte, error) {
	k, err := Kind(doc)
	if err != nil {
		return nil, err
	}
	t := PEMType(k)
	if t == "" {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, KindName(k))
	}
	return pem.EncodeToMemory(&pem.Block{Type: t, Bytes: doc}), nil
}
