package wstransport

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// closeGrace bounds how long Close waits to send the close frame: a peer
// that stopped reading must not hold Close.
const closeGrace = 100 * time.Millisecond

// Conn carries a byte stream over a WebSocket: each Write is one binary
// message; Read returns message payloads back to back, ignoring message
// boundaries, as go-libp2p's transport does on the other end.
type Conn struct {
	ws           *websocket.Conn
	laddr, raddr ma.Multiaddr

	rmu  sync.Mutex // Read: gorilla allows one reader
	r    io.Reader  // the current message, nil between messages
	rerr error      // the first read error, returned from then on

	wmu sync.Mutex // Write and SetWriteDeadline: gorilla allows one writer

	closeOnce sync.Once
	closeErr  error
}

var _ manet.Conn = (*Conn)(nil)

func newConn(ws *websocket.Conn, laddr, raddr ma.Multiaddr) *Conn {
	return &Conn{ws: ws, laddr: laddr, raddr: raddr}
}

func (c *Conn) Read(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	// gorilla panics after 1000 reads on a failed connection; a read error
	// is final here, whoever keeps reading.
	if c.rerr != nil {
		return 0, c.rerr
	}
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				c.rerr = readErr(err)
				return 0, c.rerr
			}
			if typ != websocket.BinaryMessage && typ != websocket.TextMessage {
				continue
			}
			c.r = r
		}
		n, err := c.r.Read(b)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue // an empty message, or the end of one
			}
			return n, nil
		}
		if err != nil {
			c.rerr = readErr(err)
			return n, c.rerr
		}
		return n, nil
	}
}

// readErr makes a normal close frame the end of the stream.
func readErr(err error) error {
	var ce *websocket.CloseError
	if errors.As(err, &ce) && (ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseNoStatusReceived) {
		return io.EOF
	}
	return err
}

func (c *Conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Close sends a normal close frame (best effort, closeGrace at most) and
// closes the TCP connection.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		// Unblocks a Read in progress.
		_ = c.ws.SetReadDeadline(time.Now())
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeGrace))
		c.closeErr = c.ws.Close()
	})
	return c.closeErr
}

func (c *Conn) LocalAddr() net.Addr               { return c.ws.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr              { return c.ws.RemoteAddr() }
func (c *Conn) LocalMultiaddr() ma.Multiaddr      { return c.laddr }
func (c *Conn) RemoteMultiaddr() ma.Multiaddr     { return c.raddr }
func (c *Conn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.SetWriteDeadline(t)
}

func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}
