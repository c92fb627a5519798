package topics

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

// BackfillID is the protocol a member asks a peer with for topic messages
// it missed (a partition, a stalled path): the peer answers from the
// messages it saw recently (Limits.Backfill), as their authors signed them.
// One request per stream. Every frame is a protocol frame (type uint8,
// length uint32, payload; protocol.WriteFrame); integers big-endian.
//
//	asker                                 responder
//	  request -------------------------->  checks the asker is a member and
//	                                        may join the topic, rate limits
//	  <------------------ message frames    the author's messages in the
//	  <-------------------------- end       range it holds, in sequence
//
// A request frame (type frameBackfillRequest, at most maxBackfillRequest):
//
//	version   uint8   // backfillVersion
//	topicLen  uint16  // 1..MaxTopicName
//	topic     [topicLen]byte
//	authorLen uint8   // 1..maxPeerIDLen
//	author    [authorLen]byte // the author's peer ID, binary
//	session   uint64  // the author's envelope session
//	first     uint64  // the first sequence number wanted, >= 1
//	last      uint64  // the last, first <= last < first+maxBackfillRange
//
// A message frame (type frameBackfillMessage) carries one gossipsub
// message (its protobuf pb.Message) exactly as its author signed it, at
// most maxRPC bytes; the asker checks it as gossip is checked (signature,
// membership, policy, size) and that it is the author's, in the topic,
// session and range asked. The responder sends at most maxBackfillReply
// messages and maxBackfillBytes bytes, in ascending sequence, skipping the
// ones it does not hold, then an end frame (type frameBackfillEnd, empty)
// and closes. Whatever breaks these rules (a frame too large, an unknown
// type or version, a bad range) resets the stream.
//
// Version history:
//   - 1 (/overlay/topics/backfill/1.0.0): first version.
const BackfillID = "/overlay/topics/backfill/1.0.0"

const backfillVersion = 1

// Frame types of BackfillID.
const (
	frameBackfillRequest = 1
	frameBackfillMessage = 2
	frameBackfillEnd     = 3
)

// Bounds of BackfillID.
const (
	// maxPeerIDLen is the longest binary peer ID accepted (an identity
	// multihash of a 4096-bit RSA key is longer; such a member's messages
	// are not backfilled).
	maxPeerIDLen = 64
	// maxBackfillRequest caps a request frame's payload.
	maxBackfillRequest = 1 + 2 + MaxTopicName + 1 + maxPeerIDLen + 3*8
	// maxBackfillRange is the most sequence numbers one request spans.
	maxBackfillRange = 4096
	// maxBackfillReply and maxBackfillBytes bound one reply: messages and
	// bytes (one message is sent whatever its size, up to maxRPC).
	maxBackfillReply = 1024
	maxBackfillBytes = 4 << 20
)

// Errors of the backfill request decoder.
var ErrBackfillRequest = errors.New("bad backfill request")

// backfillRequest asks for the author's messages first..last (inclusive) of
// one session in topic.
type backfillRequest struct {
	topic       string
	author      peer.ID
	session     uint64
	first, last uint64
}

func (r backfillRequest) encode() []byte {
	a := []byte(r.author)
	b := make([]byte, 0, 1+2+len(r.topic)+1+len(a)+24)
	b = append(b, backfillVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.topic)))
	b = append(b, r.topic...)
	b = append(b, byte(len(a)))
	b = append(b, a...)
	b = binary.BigEndian.AppendUint64(b, r.session)
	b = binary.BigEndian.AppendUint64(b, r.first)
	b = binary.BigEndian.AppendUint64(b, r.last)
	return b
}

// decodeBackfillRequest parses and checks a request frame's payload.
func decodeBackfillRequest(b []byte) (backfillRequest, error) {
	var r backfillRequest
	if len(b) > maxBackfillRequest {
		return r, fmt.Errorf("%w: %d bytes, cap %d", ErrBackfillRequest, len(b), maxBackfillRequest)
	}
	if len(b) < 3 {
		return r, fmt.Errorf("%w: short", ErrBackfillRequest)
	}
	if b[0] != backfillVersion {
		return r, fmt.Errorf("%w: version %d", ErrBackfillRequest, b[0])
	}
	tl := int(binary.BigEndian.Uint16(b[1:]))
	b = b[3:]
	if len(b) < tl+1 {
		return r, fmt.Errorf("%w: short topic", ErrBackfillRequest)
	}
	r.topic = string(b[:tl])
	if err := ValidName(r.topic); err != nil {
		return r, fmt.Errorf("%w: %w", ErrBackfillRequest, err)
	}
	al := int(b[tl])
	b = b[tl+1:]
	if al == 0 || al > maxPeerIDLen || len(b) != al+24 {
		return r, fmt.Errorf("%w: author of %d bytes in %d", ErrBackfillRequest, al, len(b))
	}
	id, err := peer.IDFromBytes(b[:al])
	if err != nil {
		return r, fmt.Errorf("%w: author: %w", ErrBackfillRequest, err)
	}
	r.author = id
	b = b[al:]
	r.session = binary.BigEndian.Uint64(b)
	r.first = binary.BigEndian.Uint64(b[8:])
	r.last = binary.BigEndian.Uint64(b[16:])
	if r.first == 0 || r.last < r.first || r.last-r.first >= maxBackfillRange {
		return r, fmt.Errorf("%w: range %d..%d", ErrBackfillRequest, r.first, r.last)
	}
	return r, nil
}
