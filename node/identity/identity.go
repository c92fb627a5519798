// Package identity owns a node's identity key file: created once, read at
// every start, so the node keeps its peer ID across restarts.
package identity

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/overlay-net/overlay/internal/atomicfile"
)

// ErrDamaged reports a key file that exists but does not hold a usable key.
// The node never replaces it on its own: a new key is a new peer ID, which
// every member and allow list would have to learn again.
var ErrDamaged = errors.New("identity key file is damaged")

// maxKeyFile caps what is read: an Ed25519 key file is 68 bytes, an RSA one
// a few KiB; anything larger is not a key.
const maxKeyFile = 64 << 10

// LoadOrCreate reads the identity at path, or generates an Ed25519 one there
// (mode 0600) when the file does not exist, so a node keeps its peer ID
// across restarts. A file that is not a valid key (truncated, a flipped
// byte, a special file) is an error wrapping ErrDamaged that names the file
// and how to recover; it is never replaced by a new identity.
func LoadOrCreate(path string) (crypto.PrivKey, error) {
	b, err := atomicfile.ReadCapped(path, maxKeyFile)
	switch {
	case err == nil:
		k, err := Parse(b)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v; restore it from a backup, or move it aside to start with a new identity (a new peer ID)", ErrDamaged, path, err)
		}
		return k, nil
	case errors.Is(err, atomicfile.ErrTooLarge), errors.Is(err, atomicfile.ErrNotRegular):
		return nil, fmt.Errorf("%w: %s: %v; restore it from a backup, or move it aside to start with a new identity (a new peer ID)", ErrDamaged, path, err)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	b, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create key dir: %w", err)
	}
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("write key %s: %w", path, err)
	}
	return k, nil
}

// Parse decodes a key file's bytes and checks that the key works: it signs,
// and its own public key verifies the signature. A libp2p Ed25519 private key carries its public key after the
// seed, and decoding does not compare the two: a flipped byte in either
// half would otherwise give a node another peer ID, or one whose
// signatures every peer rejects.
func Parse(b []byte) (crypto.PrivKey, error) {
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	msg := []byte("overlay identity self-check")
	sig, err := k.Sign(msg)
	if err != nil {
		return nil, fmt.Errorf("sign with it: %w", err)
	}
	if ok, err := k.GetPublic().Verify(msg, sig); err != nil || !ok {
		return nil, errors.New("its public half does not match its private half")
	}
	return k, nil
}
