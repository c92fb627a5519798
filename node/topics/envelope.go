package topics

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/overlay-net/overlay/protocol"
)

// Wire format of a topic message's data, inside gossipsub's signed message
// (whose From, Seqno and Signature say who wrote it):
//
//	version  uint8   // envelopeVersion
//	session  uint64  // big endian; random per publisher start
//	seq      uint64  // big endian; 1, 2, 3... per topic within a session
//	data     []byte  // the application's bytes, at most MaxData
//
// A subscriber orders each publisher's messages by seq and counts what is
// missing; a new session (the publisher restarted) starts a new count.
//
// Version history:
//   - 1: first version.
const envelopeVersion = 1

// headerLen is the envelope's fixed header.
const headerLen = 1 + 8 + 8

// MaxData is the largest message a topic carries: the cap of direct
// messages (protocol.MaxMessageSize).
const MaxData = protocol.MaxMessageSize

// maxRPC is gossipsub's cap on one RPC read from a peer: one full message
// with its envelope, signature, key and topic, plus room for control.
const maxRPC = MaxData + 64<<10

// Envelope errors.
var (
	ErrShort   = errors.New("topic message shorter than its header")
	ErrVersion = errors.New("topic message of an unknown version")
)

type envelope struct {
	session, seq uint64
	data         []byte
}

// encode returns the envelope's bytes.
func (e envelope) encode() []byte {
	b := make([]byte, headerLen+len(e.data))
	b[0] = envelopeVersion
	binary.BigEndian.PutUint64(b[1:], e.session)
	binary.BigEndian.PutUint64(b[9:], e.seq)
	copy(b[headerLen:], e.data)
	return b
}

// decodeEnvelope parses b; data aliases b.
func decodeEnvelope(b []byte) (envelope, error) {
	if len(b) < headerLen {
		return envelope{}, ErrShort
	}
	if b[0] != envelopeVersion {
		return envelope{}, fmt.Errorf("%w: %d", ErrVersion, b[0])
	}
	if len(b)-headerLen > MaxData {
		return envelope{}, fmt.Errorf("topic message of %d bytes: %w", len(b)-headerLen, protocol.ErrTooLarge)
	}
	e := envelope{session: binary.BigEndian.Uint64(b[1:]), seq: binary.BigEndian.Uint64(b[9:]), data: b[headerLen:]}
	if e.seq == 0 {
		return envelope{}, errors.New("topic message with sequence number 0")
	}
	return e, nil
}
