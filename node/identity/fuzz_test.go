package identity_test

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/overlay-net/overlay/node/identity"
)

// FuzzParse feeds the key file decoder arbitrary bytes: it returns an
// error or a key that signs and verifies, never a panic.
func FuzzParse(f *testing.F) {
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := crypto.MarshalPrivateKey(k)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x01, 0x12, 0x00})
	f.Add([]byte{0x08, 0x02, 0x12, 0x20, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := identity.Parse(data)
		if err != nil {
			return
		}
		sig, err := k.Sign([]byte("x"))
		if err != nil {
			t.Fatalf("accepted key cannot sign: %v", err)
		}
		if ok, err := k.GetPublic().Verify([]byte("x"), sig); !ok || err != nil {
			t.Fatalf("accepted key does not verify its own signature: %v", err)
		}
	})
}
