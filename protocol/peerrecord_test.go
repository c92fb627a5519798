package protocol_test

import (
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/protocol"
)

func newKey(t testing.TB) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	return k, id
}

func TestPeerRecordRoundTrip(t *testing.T) {
	k, id := newKey(t)
	addrs := []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1/ws/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo/p2p-circuit")}
	rec, err := protocol.SealPeerRecord(k, addrs)
	if err != nil {
		t.Fatal(err)
	}
	ai, seq, err := protocol.OpenPeerRecord(protocol.PeerRecordKey(id), rec)
	if err != nil || ai.ID != id || len(ai.Addrs) != 1 || !ai.Addrs[0].Equal(addrs[0]) || seq == 0 {
		t.Fatalf("open = %v %d %v", ai, seq, err)
	}
}

// Nobody can publish a record under another peer's key.
func TestPeerRecordForeignKeyRejected(t *testing.T) {
	k, _ := newKey(t)
	_, victim := newKey(t)
	rec, err := protocol.SealPeerRecord(k, []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := protocol.OpenPeerRecord(protocol.PeerRecordKey(victim), rec); !errors.Is(err, protocol.ErrBadPeerRecord) {
		t.Fatalf("record under another key: %v, want ErrBadPeerRecord", err)
	}
	v := protocol.PeerRecordValidator{}
	if err := v.Validate("/other/"+victim.String(), rec); err == nil {
		t.Fatal("record outside the namespace accepted")
	}
}

func TestPeerRecordSelectNewest(t *testing.T) {
	k, id := newKey(t)
	key := protocol.PeerRecordKey(id)
	old, _ := protocol.SealPeerRecord(k, []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1")})
	newer, _ := protocol.SealPeerRecord(k, []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/2")})
	i, err := protocol.PeerRecordValidator{}.Select(key, [][]byte{[]byte("junk"), newer, old})
	if err != nil || i != 1 {
		t.Fatalf("select = %d, %v; want 1 (the newest valid)", i, err)
	}
}

func FuzzOpenPeerRecord(f *testing.F) {
	k, id := newKey(f)
	rec, _ := protocol.SealPeerRecord(k, []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1")})
	f.Add(protocol.PeerRecordKey(id), rec)
	f.Add("/overlay-peer/x", []byte{0x0a, 0x01})
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		ai, _, err := protocol.OpenPeerRecord(key, value)
		if err == nil && protocol.PeerRecordKey(ai.ID) != key {
			t.Fatalf("record for %s accepted under key %q", ai.ID, key)
		}
	})
}
