package identity

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/libp2p/go-libp2p/core/pnet"
)

// maxPSKFile bounds a swarm key file: the standard one is 95 bytes.
const maxPSKFile = 4096

// ReadPSK reads a libp2p private-network key in the standard swarm key
// format (/key/swarm/psk/1.0.0/, then /base16/ and 64 hex digits), as
// 'overlay psk new' and ipfs-swarm-key-gen write it.
func ReadPSK(path string) (pnet.PSK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read pre-shared key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPSKFile+1))
	if err != nil {
		return nil, fmt.Errorf("read pre-shared key %s: %w", path, err)
	}
	if len(b) > maxPSKFile {
		return nil, fmt.Errorf("pre-shared key %s: larger than %d bytes, not a swarm key file", path, maxPSKFile)
	}
	psk, err := pnet.DecodeV1PSK(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("pre-shared key %s: %w (want a swarm key file: overlay psk new FILE)", path, err)
	}
	if len(psk) != 32 {
		return nil, fmt.Errorf("pre-shared key %s: %d bytes, want 32", path, len(psk))
	}
	return psk, nil
}

// WritePSK creates path holding a new random pre-shared key in the swarm
// key format. It never overwrites a file: a key replaced by mistake would
// cut the node off from its network.
func WritePSK(path string) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("new pre-shared key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("new pre-shared key: %s exists; not overwriting it", path)
		}
		return fmt.Errorf("new pre-shared key: %w", err)
	}
	_, err = fmt.Fprintf(f, "/key/swarm/psk/1.0.0/\n/base16/\n%s\n", hex.EncodeToString(key))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write pre-shared key %s: %w", path, err)
	}
	return nil
}
