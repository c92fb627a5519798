package cert

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
)

// A CA's keys live in PEM files: the public key as a block of type
// PEMCAPublic holding its 32 bytes, the private key as PEMCAPrivate holding
// its 32-byte seed. The private key file belongs on the offline machine
// that signs; nodes get the public key only.

// maxKeyFile caps a key file before it is parsed.
const maxKeyFile = 4 << 10

// NewCA returns a new CA key pair.
func NewCA() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("new CA key: %w", err)
	}
	return pub, priv, nil
}

// Fingerprint is a short, stable name of a CA public key for people and
// logs: the first 8 bytes of its SHA-256, in hex.
func Fingerprint(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		return "(none)"
	}
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// EncodePublicKey is a CA public key as text: base64 of its 32 bytes.
func EncodePublicKey(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// MarshalPublicKey is the PEM file of a CA public key.
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: PEMCAPublic, Bytes: pub})
}

// MarshalPrivateKey is the PEM file of a CA private key (its seed).
func MarshalPrivateKey(priv ed25519.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: PEMCAPrivate, Bytes: priv.Seed()})
}

// ParsePublicKey reads a CA public key from the PEM file MarshalPublicKey
// writes, or from the base64 text EncodePublicKey returns.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("CA public key: %d bytes over cap %d", len(b), maxKeyFile)
	}
	var raw []byte
	if blk, rest := pem.Decode(b); blk != nil {
		if blk.Type != PEMCAPublic {
			return nil, fmt.Errorf("CA public key: PEM block %q, want %q", blk.Type, PEMCAPublic)
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, fmt.Errorf("CA public key: data after the PEM block")
		}
		raw = blk.Bytes
	} else {
		var err error
		if raw, err = base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b))); err != nil {
			return nil, fmt.Errorf("CA public key: neither PEM nor base64: %v", err)
		}
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("CA public key: %d bytes, want %d", len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// ParsePrivateKey reads a CA private key from the PEM file
// MarshalPrivateKey writes.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("CA private key: %d bytes over cap %d", len(b), maxKeyFile)
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != PEMCAPrivate {
		return nil, fmt.Errorf("CA private key: not a %q PEM block", PEMCAPrivate)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("CA private key: data after the PEM block")
	}
	if len(blk.Bytes) != ed25519.SeedSize {
		return nil, fmt.Errorf("CA private key: %d bytes, want a %d-byte seed", len(blk.Bytes), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(blk.Bytes), nil
}
