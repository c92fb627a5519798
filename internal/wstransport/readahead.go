package wstransport

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// readAheadSize is what one read of a connection asks the kernel for while
// data flows: several TLS records at once. Gorilla's reader and the
// payload reads past it (on /tls/ws, the TLS layer's record reads) then
// copy from this buffer instead of each making a read system call (two
// per record without it: docs/datapath.md).
const readAheadSize = 64 << 10

var readAheadPool = sync.Pool{New: func() any { b := make([]byte, readAheadSize); return &b }}

// readAheadHeld counts the buffers connections hold: data read from the
// socket and not yet consumed.
var readAheadHeld atomic.Int64

// waiting, when set (tests), is called each time a reader finds its socket
// empty and waits.
var waiting atomic.Pointer[func()]

func getReadAhead() *[]byte {
	readAheadHeld.Add(1)
	return readAheadPool.Get().(*[]byte)
}

func putReadAhead(b *[]byte) {
	readAheadHeld.Add(-1)
	readAheadPool.Put(b)
}

// readAhead reads its connection in large pieces into a pooled buffer and
// serves smaller reads from it. It takes the buffer only once the socket
// has data (waitReadable), so a connection waiting for its peer, as
// thousands of a relay's reserved peers do, holds none.
type readAhead struct {
	net.Conn // reads go through it, so wrappers (relay.Gate's) see them
	rc       syscall.RawConn

	mu       sync.Mutex // buf against Close; one reader at a time (gorilla's)
	buf      *[]byte    // nil when drained
	off, end int
	err      error // a read error that came with data, returned next
	closed   bool
}

// dialReadAhead dials TCP (to the peer, or to a proxy) and reads the
// connection ahead: a peer receiving from a stock relay, which writes a
// record as 4 KiB and then the rest, would otherwise make a read system
// call for each piece.
func dialReadAhead(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return withReadAhead(c), nil
}

// withReadAhead wraps c when its socket can be waited on (Linux TCP, through
// wrappers that pass SyscallConn on); otherwise it returns c.
func withReadAhead(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok || !canWaitReadable {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &readAhead{Conn: c, rc: rc}
}

func (r *readAhead) Read(p []byte) (int, error) {
	if n, ok, err := r.buffered(p); ok {
		return n, err
	}
	if len(p) >= readAheadSize {
		return r.Conn.Read(p)
	}
	if err := waitReadable(r.rc); err != nil {
		return 0, err
	}
	b := getReadAhead()
	n, err := r.Conn.Read(*b)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		putReadAhead(b)
		return 0, net.ErrClosed
	case n <= 0:
		putReadAhead(b)
		return 0, err
	}
	r.buf, r.off, r.end, r.err = b, 0, n, err
	return r.take(p), nil
}

// buffered serves p from the buffer, or reports (ok false) that the socket
// must be read.
func (r *readAhead) buffered(p []byte) (int, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.buf != nil:
		return r.take(p), true, nil
	case r.err != nil:
		return 0, true, r.err
	}
	return 0, false, nil
}

func (r *readAhead) take(p []byte) int {
	n := copy(p, (*r.buf)[r.off:r.end])
	r.off += n
	if r.off == r.end {
		putReadAhead(r.buf)
		r.buf = nil
	}
	return n
}

// Close gives the buffer back: data not yet read is dropped with the
// connection.
func (r *readAhead) Close() error {
	r.mu.Lock()
	if r.buf != nil {
		putReadAhead(r.buf)
		r.buf = nil
	}
	r.closed = true
	r.mu.Unlock()
	return r.Conn.Close()
}
