package protocol

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// PerfID is the libp2p perf protocol (libp2p/specs perf/perf.md, as driven
// by libp2p/test-plans): any libp2p implementation that serves it can be
// measured against an overlay node, and the other way round.
//
// Flow on one stream:
//
//	client: uint64 big-endian N (bytes it wants back), then its upload, then
//	        closes its write side
//	server: reads until EOF, then writes N bytes and closes
const PerfID = "/perf/1.0.0"

// perfIdle bounds how long the server waits for the next upload bytes.
const perfIdle = 30 * time.Second

const perfChunk = 64 << 10

// HandlePerf serves the perf protocol on s.
func HandlePerf(s network.Stream) {
	_ = s.SetReadDeadline(time.Now().Add(HandshakeTimeout))
	var hdr [8]byte
	if _, err := io.ReadFull(s, hdr[:]); err != nil {
		s.Reset()
		return
	}
	want := binary.BigEndian.Uint64(hdr[:])
	buf := make([]byte, perfChunk)
	for {
		_ = s.SetReadDeadline(time.Now().Add(perfIdle))
		_, err := s.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			s.Reset()
			return
		}
	}
	_ = s.SetReadDeadline(time.Time{})
	if err := writeZeros(s, want, buf); err != nil {
		s.Reset()
		return
	}
	s.Close()
}

func writeZeros(w io.Writer, n uint64, buf []byte) error {
	clear(buf)
	for n > 0 {
		c := min(n, uint64(len(buf)))
		if _, err := w.Write(buf[:c]); err != nil {
			return err
		}
		n -= c
	}
	return nil
}

// PerfResult is one perf run as the client saw it.
type PerfResult struct {
	Upload       uint64        `json:"upload_bytes"`
	Download     uint64        `json:"download_bytes"`
	UploadTime   time.Duration `json:"upload_ns"`
	DownloadTime time.Duration `json:"download_ns"`
	Total        time.Duration `json:"total_ns"`
}

// RunPerf sends up bytes to p and asks for down bytes back.
func RunPerf(ctx context.Context, h host.Host, p peer.ID, up, down uint64) (PerfResult, error) {
	res := PerfResult{Upload: up, Download: down}
	ctx = network.WithAllowLimitedConn(ctx, "perf")
	s, err := h.NewStream(ctx, p, PerfID)
	if err != nil {
		return res, fmt.Errorf("open perf stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	start := time.Now()
	buf := make([]byte, perfChunk)
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], down)
	if _, err := s.Write(hdr[:]); err != nil {
		s.Reset()
		return res, fmt.Errorf("perf request: %w", err)
	}
	if err := writeZeros(s, up, buf); err != nil {
		s.Reset()
		return res, fmt.Errorf("perf upload: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return res, fmt.Errorf("perf upload: %w", err)
	}
	res.UploadTime = time.Since(start)
	mid := time.Now()
	got, err := io.CopyBuffer(io.Discard, s, buf)
	if err != nil {
		s.Reset()
		return res, fmt.Errorf("perf download: %w", err)
	}
	if uint64(got) != down {
		return res, fmt.Errorf("perf download: got %d bytes, want %d", got, down)
	}
	res.DownloadTime = time.Since(mid)
	res.Total = time.Since(start)
	s.Close()
	return res, nil
}
