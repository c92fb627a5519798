package tunnel

import (
	"io"
	"net"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// pipe is one tunnel carrying bytes: a TCP connection and its stream (or
// resumable session).
type pipe struct {
	c      tcpConn
	st     Conn
	peer   peer.ID
	served string // the service name when this node serves it; "": a forward
	once   sync.Once
	mu     sync.Mutex
	err    error // the first failure, which cut the tunnel
}

// abort cuts the tunnel: the stream is reset, so the other side cuts its
// TCP connection too, and the local TCP connection is reset rather than
// closed, so that its program sees a failure, not a clean end of data.
func (p *pipe) abort(cause error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = cause
	}
	p.mu.Unlock()
	p.once.Do(func() {
		p.st.Reset()
		if tc, ok := p.c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		p.c.Close()
	})
}

func (p *pipe) cause() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// carry copies bytes both ways until both directions end, in this
// goroutine and one more that Close waits for. Each direction's end of
// data is passed on as a half-close; a failure either way cuts both. It
// returns the bytes carried each way and the failure, if any. served names
// the service when this node serves the tunnel ("" for a forward).
func (s *Service) carry(c tcpConn, st Conn, from peer.ID, served string) (up, down int64, err error) {
	p := &pipe{c: c, st: st, peer: from, served: served}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		p.abort(ErrClosed)
		return 0, 0, ErrClosed
	}
	s.live[p] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer s.wg.Done()
		defer close(done)
		var err error
		up, err = copyAdaptive(st, c)
		if err == nil {
			err = st.CloseWrite()
		}
		if err != nil {
			p.abort(err)
		}
	}()
	down, err = copyAdaptive(c, st)
	if err == nil {
		err = c.CloseWrite()
	}
	if err != nil {
		p.abort(err)
	}
	<-done
	s.mu.Lock()
	delete(s.live, p)
	s.mu.Unlock()
	if err := p.cause(); err != nil {
		return up, down, err
	}
	_ = st.Close()
	_ = c.Close()
	return up, down, nil
}

// Buffer sizes of a copy. A direction moving data in bulk reads into a
// pooled large buffer, fewer and larger writes being what makes a stream
// fast; one that reads little (an idle or interactive connection) holds
// only a small one while it waits, so that thousands of idle tunnels cost
// little memory.
const (
	smallBuf = 2 << 10
	largeBuf = 64 << 10
)

var largePool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}

// copyAdaptive is io.Copy that switches between a small buffer and a
// pooled large one: to the large one after a read fills the small one, back
// after a read uses under an eighth of the large one. Nothing is buffered
// beyond the buffer in hand, so a slow reader slows the writer.
func copyAdaptive(dst io.Writer, src io.Reader) (int64, error) {
	small := make([]byte, smallBuf)
	var large *[]byte
	defer func() {
		if large != nil {
			largePool.Put(large)
		}
	}()
	var total int64
	for {
		buf := small
		if large != nil {
			buf = *large
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
			if w != n {
				return total, io.ErrShortWrite
			}
		}
		if rerr != nil {
			// Only io.EOF itself is the end of data: yamux wraps it in the
			// reset of every stream of a connection that ended (a relay
			// gone), and that must cut the tunnel, not half-close it.
			if rerr == io.EOF {
				return total, nil
			}
			return total, rerr
		}
		switch {
		case large == nil && n == len(small):
			large = largePool.Get().(*[]byte)
		case large != nil && n < largeBuf/8:
			largePool.Put(large)
			large = nil
		}
	}
}
