// Package protocol holds overlay's wire protocols: the handshake run on every
// connection and the member message stream. Each protocol documents its wire
// format where it is defined.
package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Every overlay protocol speaks in frames of this layout (integers big-endian):
//
//	+--------+----------------+---------------------+
//	| type   | length         | payload             |
//	| uint8  | uint32         | [length]byte        |
//	+--------+----------------+---------------------+
//
// The reader checks length against the caller's cap before reading the
// payload, so a peer cannot make us allocate more than the cap.
const frameHeaderLen = 5

// ErrFrameTooLarge is returned when a frame announces a payload over the cap.
var ErrFrameTooLarge = errors.New("frame too large")

// WriteFrame writes one frame whose payload is the parts joined, in a single
// Write so that a frame is never interleaved with another writer's bytes.
func WriteFrame(w io.Writer, typ byte, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	buf := make([]byte, frameHeaderLen, frameHeaderLen+n)
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:5], uint32(n))
	for _, p := range parts {
		buf = append(buf, p...)
	}
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame whose payload is at most max bytes.
func ReadFrame(r io.Reader, max uint32) (typ byte, payload []byte, err error) {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:5])
	if n > max {
		return 0, nil, fmt.Errorf("%w: %d bytes, cap %d", ErrFrameTooLarge, n, max)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("read frame payload: %w", err)
	}
	return hdr[0], payload, nil
}
