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

// PerfResumeID is the same perf flow carried by a resumable session
// (resume.go), so that a run follows the path between two overlay nodes as
// it changes (relayed to direct and back) instead of being cut or stuck
// on the relay. A client asks for it first and falls back to PerfID.
//
// Version history:
//
//	1.0.0  perf request (session ID), accept; then PerfID's flow as the
//	       session's data.
const PerfResumeID = "/overlay/perf/1.0.0"

const (
	framePerfRequest = 0x28 // session ID [SessionIDLen]byte
	framePerfAccept  = 0x29 // empty
)

// PerfConn is what a perf run goes over: a stream, or a session.
type PerfConn interface {
	io.Reader
	io.Writer
	CloseWrite() error
}

// WritePerfRequest asks for a perf run as session id.
func WritePerfRequest(w io.Writer, id SessionID) error { return WriteFrame(w, framePerfRequest, id[:]) }

// WritePerfAccept accepts a perf request.
func WritePerfAccept(w io.Writer) error { return WriteFrame(w, framePerfAccept) }

// ReadPerfRequest reads a perf request within d.
func ReadPerfRequest(r ReadDeadliner, d time.Duration) (SessionID, error) {
	typ, p, err := readDeadline(r, d, SessionIDLen)
	if err != nil {
		return SessionID{}, fmt.Errorf("read perf request: %w", err)
	}
	if typ != framePerfRequest || len(p) != SessionIDLen {
		return SessionID{}, fmt.Errorf("%w: frame %#x of %d bytes where a perf request belongs", ErrResumeMalformed, typ, len(p))
	}
	return SessionID(p), nil
}

// ReadPerfAccept reads the answer to a perf request within d.
func ReadPerfAccept(r ReadDeadliner, d time.Duration) error {
	typ, p, err := readDeadline(r, d, 0)
	if err != nil {
		return fmt.Errorf("read perf answer: %w", err)
	}
	if typ != framePerfAccept || len(p) != 0 {
		return fmt.Errorf("%w: frame %#x where a perf answer belongs", ErrResumeMalformed, typ)
	}
	return nil
}

// ServePerf serves one perf run on c, a session: the caller bounds it.
func ServePerf(c PerfConn) error {
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return fmt.Errorf("perf request: %w", err)
	}
	buf := make([]byte, perfChunk)
	if _, err := io.CopyBuffer(io.Discard, onlyReader{c}, buf); err != nil {
		return fmt.Errorf("perf upload: %w", err)
	}
	if err := writeZeros(c, binary.BigEndian.Uint64(hdr[:]), buf); err != nil {
		return fmt.Errorf("perf download: %w", err)
	}
	return c.CloseWrite()
}

type onlyReader struct{ io.Reader }

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
	ctx = network.WithAllowLimitedConn(ctx, "perf")
	s, err := h.NewStream(ctx, p, PerfID)
	if err != nil {
		return PerfResult{Upload: up, Download: down}, fmt.Errorf("open perf stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	res, err := PerfOver(s, up, down)
	if err != nil {
		s.Reset()
		return res, err
	}
	s.Close()
	return res, nil
}

// PerfOver runs the client side of perf on c: it sends up bytes, then
// reads down bytes back to their end. The caller cuts c to stop it.
func PerfOver(c PerfConn, up, down uint64) (PerfResult, error) {
	res := PerfResult{Upload: up, Download: down}
	start := time.Now()
	buf := make([]byte, perfChunk)
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], down)
	if _, err := c.Write(hdr[:]); err != nil {
		return res, fmt.Errorf("perf request: %w", err)
	}
	if err := writeZeros(c, up, buf); err != nil {
		return res, fmt.Errorf("perf upload: %w", err)
	}
	if err := c.CloseWrite(); err != nil {
		return res, fmt.Errorf("perf upload: %w", err)
	}
	res.UploadTime = time.Since(start)
	mid := time.Now()
	got, err := io.CopyBuffer(io.Discard, onlyReader{c}, buf)
	if err != nil {
		return res, fmt.Errorf("perf download: %w", err)
	}
	if uint64(got) != down {
		return res, fmt.Errorf("perf download: got %d bytes, want %d", got, down)
	}
	res.DownloadTime = time.Since(mid)
	res.Total = time.Since(start)
	return res, nil
}
