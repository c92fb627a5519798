package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// IPID is the libp2p protocol ID of IP packets between members' network
// interfaces (node/tun).
//
// Version history:
//
//	1.0.0  a stream of packet frames, one way: the opener sends, the
//	       answering side only reads.
const IPID = "/overlay/ip/1.0.0"

// Protocol flow. A member that has packets for another opens one stream to
// it (over a relayed connection too) and writes packet frames on it; the
// other side reads them and writes nothing back. Packets the other way go
// on a stream that side opens. When a direct connection appears, the sender
// closes its stream (CloseWrite: the reader gets every frame before EOF)
// and opens a new one, which the swarm puts on the direct connection.
// Packets are datagrams: loss or reordering across the move is for TCP
// above the interface to handle, as on any IP path.
//
// A packet frame (several are batched into one stream write):
//
//	length  uint16, big-endian: 1..MaxIPPacket
//	packet  length bytes: one IPv4 or IPv6 packet, from its IP header on
//
// A length of 0 or above the reader's cap is malformed: the reader resets
// the stream. The reader holds a read deadline of IPIdleTimeout, renewed as
// frames arrive: a stream idle that long is closed, and the next packet
// opens a new one.
const (
	// MaxIPPacket caps one packet frame: the largest IPv4 total length,
	// and far above any interface MTU the engine sets.
	MaxIPPacket = 65535
	// IPFrameHeader is the size of a packet frame's length prefix.
	IPFrameHeader = 2
	// IPIdleTimeout is how long a packet stream may carry nothing.
	IPIdleTimeout = 2 * time.Minute
)

// ErrIPMalformed reports a packet frame that breaks the format.
var ErrIPMalformed = errors.New("malformed packet frame")

// AppendIPFrame appends the frame of packet p to b. p must hold 1 to
// MaxIPPacket bytes.
func AppendIPFrame(b, p []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
	return append(b, p...)
}

// ReadIPFrame reads one packet frame from r into buf and returns the
// packet, a prefix of buf. A length of 0 or above len(buf) (the caller's
// cap, at most MaxIPPacket) is an error wrapping ErrIPMalformed; a stream
// that ends between frames returns io.EOF, inside one io.ErrUnexpectedEOF.
func ReadIPFrame(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [IPFrameHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n == 0 || n > len(buf) {
		return nil, fmt.Errorf("%w: length %d, cap %d", ErrIPMalformed, n, len(buf))
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("packet of %d bytes: %w", n, err)
	}
	return buf[:n], nil
}
