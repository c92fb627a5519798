package protocol

import (
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
)

// A member publishes where it can be reached as a libp2p signed peer record
// (a peer.PeerRecord sealed in a record.Envelope, signed with its identity
// key) stored in the overlay's DHT under
//
//	/overlay-peer/<peer ID>
//
// Only the key's owner can sign a valid record, so nobody can point another
// member's ID at their own addresses. Among several records the one with the
// highest sequence number (a timestamp) wins.
const PeerRecordNamespace = "overlay-peer"

// MaxPeerRecordSize caps a stored record.
const MaxPeerRecordSize = 8 << 10

// ErrBadPeerRecord reports a record that fails validation.
var ErrBadPeerRecord = errors.New("invalid peer record")

// PeerRecordKey is the DHT key of id's record.
func PeerRecordKey(id peer.ID) string {
	return "/" + PeerRecordNamespace + "/" + id.String()
}

// SealPeerRecord signs a record of addrs with the node's key.
func SealPeerRecord(key crypto.PrivKey, addrs []ma.Multiaddr) ([]byte, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	rec := peer.PeerRecordFromAddrInfo(peer.AddrInfo{ID: id, Addrs: addrs})
	env, err := record.Seal(rec, key)
	if err != nil {
		return nil, fmt.Errorf("seal peer record: %w", err)
	}
	b, err := env.Marshal()
	if err != nil {
		return nil, err
	}
	if len(b) > MaxPeerRecordSize {
		return nil, fmt.Errorf("peer record of %d bytes over cap %d", len(b), MaxPeerRecordSize)
	}
	return b, nil
}

// OpenPeerRecord checks value against key and returns the addresses in it
// and its sequence number.
func OpenPeerRecord(key string, value []byte) (peer.AddrInfo, uint64, error) {
	if len(value) > MaxPeerRecordSize {
		return peer.AddrInfo{}, 0, fmt.Errorf("%w: %d bytes", ErrBadPeerRecord, len(value))
	}
	idStr, ok := strings.CutPrefix(key, "/"+PeerRecordNamespace+"/")
	if !ok {
		return peer.AddrInfo{}, 0, fmt.Errorf("%w: key %q outside /%s/", ErrBadPeerRecord, key, PeerRecordNamespace)
	}
	id, err := peer.Decode(idStr)
	if err != nil {
		return peer.AddrInfo{}, 0, fmt.Errorf("%w: key: %v", ErrBadPeerRecord, err)
	}
	env, rec, err := record.ConsumeEnvelope(value, peer.PeerRecordEnvelopeDomain)
	if err != nil {
		return peer.AddrInfo{}, 0, fmt.Errorf("%w: %v", ErrBadPeerRecord, err)
	}
	pr, ok := rec.(*peer.PeerRecord)
	if !ok {
		return peer.AddrInfo{}, 0, fmt.Errorf("%w: not a peer record", ErrBadPeerRecord)
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil || signer != id || pr.PeerID != id {
		return peer.AddrInfo{}, 0, fmt.Errorf("%w: not signed by %s", ErrBadPeerRecord, id)
	}
	if len(pr.Addrs) > 2*MaxAddrs {
		return peer.AddrInfo{}, 0, fmt.Errorf("%w: %d addresses", ErrBadPeerRecord, len(pr.Addrs))
	}
	return peer.AddrInfo{ID: id, Addrs: pr.Addrs}, pr.Seq, nil
}

// PeerRecordValidator validates overlay peer records for the DHT.
type PeerRecordValidator struct{}

// Validate implements record.Validator.
func (PeerRecordValidator) Validate(key string, value []byte) error {
	_, _, err := OpenPeerRecord(key, value)
	return err
}

// Select implements record.Validator: the valid record with the highest
// sequence number wins.
func (PeerRecordValidator) Select(key string, values [][]byte) (int, error) {
	best, bestSeq := -1, uint64(0)
	for i, v := range values {
		_, seq, err := OpenPeerRecord(key, v)
		if err != nil {
			continue
		}
		if best < 0 || seq > bestSeq {
			best, bestSeq = i, seq
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("%w: none of %d records is valid", ErrBadPeerRecord, len(values))
	}
	return best, nil
}
