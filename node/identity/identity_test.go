package identity_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node/identity"
)

func TestCreateThenLoadSameKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "identity.key")
	k1, err := identity.LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v, %v; want mode 0600", fi, err)
	}
	k2, err := identity.LoadOrCreate(path)
	if err != nil || !k1.Equals(k2) {
		t.Fatalf("reload = %v, %v; want the same key", k2, err)
	}
}

// The measured failure: one flipped byte gave the node another peer ID
// (or one no peer believes) and nothing said why. Every single flipped
// byte, anywhere in the file, must be a clear error naming the file and
// the way out, and leave the file where it is.
func TestFlippedByteIsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	k, err := identity.LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	id, _ := peer.IDFromPrivateKey(k)
	for i := range good {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := append([]byte(nil), good...)
			bad[i] ^= mask
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			k2, err := identity.LoadOrCreate(path)
			if err == nil {
				id2, _ := peer.IDFromPrivateKey(k2)
				t.Fatalf("byte %d ^ %#x: loaded without error (peer ID %s, was %s)", i, mask, id2, id)
			}
			if !errors.Is(err, identity.ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "move it aside") {
				t.Fatalf("byte %d ^ %#x: %v; want ErrDamaged naming the file and the way out", i, mask, err)
			}
			if now, _ := os.ReadFile(path); string(now) != string(bad) {
				t.Fatalf("byte %d: the damaged file was changed", i)
			}
		}
	}
	for name, data := range map[string][]byte{"empty": {}, "truncated": good[:len(good)-1], "trailing": append(append([]byte(nil), good...), 0, 0), "text": []byte("hello\n")} {
		os.WriteFile(path, data, 0o600)
		if _, err := identity.LoadOrCreate(path); !errors.Is(err, identity.ErrDamaged) {
			t.Errorf("%s key file: %v, want ErrDamaged", name, err)
		}
	}
}
