package wstransport

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/transport"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// wsListener accepts TCP connections, upgrades each to WebSocket (after a
// TLS handshake on /tls/ws) in its own goroutine under one deadline, and
// hands the upgraded ones to libp2p's upgrader (which runs the security
// handshake). Unlike net/http's server it
// keeps nothing of the HTTP exchange once the upgrade is done.
type wsListener struct {
	t     *Transport
	gated transport.GatedMaListener
	laddr ma.Multiaddr
	up    websocket.Upgrader
	tls   *tls.Config // nil on /ws

	incoming chan accepted
	closed   chan struct{}
	wg       sync.WaitGroup // the accept loop and the upgrades in flight

	mu      sync.Mutex
	pending map[net.Conn]struct{} // accepted, not yet upgraded
	perIP   map[netip.Addr]int

	closeOnce sync.Once
	closeErr  error
}

type accepted struct {
	c     *Conn
	scope network.ConnManagementScope
}

var _ transport.GatedMaListener = (*wsListener)(nil)

func (t *Transport) listen(a ma.Multiaddr) (*wsListener, error) {
	tcpAddr, secure, err := listenAddr(a)
	if err != nil {
		return nil, err
	}
	var tlsConf *tls.Config
	if secure {
		if t.cfg.TLS == nil {
			return nil, errors.New("/tls/ws (wss) needs a certificate and key (Config.CertFile and KeyFile, or TLS)")
		}
		tlsConf = t.cfg.TLS.Clone()
		// The upgrade is HTTP/1.1; a client offering h2 must not get it.
		tlsConf.NextProtos = []string{"http/1.1"}
	}
	ml, err := manet.Listen(tcpAddr)
	if err != nil {
		return nil, err
	}
	// The gate applies the connection gater and opens the connection's
	// resource scope, as for every other libp2p transport.
	g := t.up.GateMaListener(ml)
	l := &wsListener{
		t:     t,
		gated: g,
		laddr: g.Multiaddr().Encapsulate(wsSuffix(secure)),
		tls:   tlsConf,
		up: websocket.Upgrader{
			HandshakeTimeout: t.cfg.HandshakeTimeout,
			ReadBufferSize:   t.cfg.AcceptReadBuffer,
			WriteBufferSize:  t.cfg.WriteBuffer,
			WriteBufferPool:  t.pool,
			// libp2p peers are authenticated by the security handshake,
			// not by origin; browsers (js-libp2p) send any origin.
			CheckOrigin: func(*http.Request) bool { return true },
		},
		incoming: make(chan accepted),
		closed:   make(chan struct{}),
		pending:  map[net.Conn]struct{}{},
		perIP:    map[netip.Addr]int{},
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

func (l *wsListener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, scope, err := l.gated.Accept()
		if err != nil {
			select {
			case <-l.closed:
			default:
				l.t.cfg.Logger.Warn("websocket listener stopped", "addr", l.laddr, "err", err)
			}
			return
		}
		ip := remoteIP(c)
		if limit := l.reserve(c, ip); limit != "" {
			drop(c, scope)
			if r := l.t.cfg.Refused; r != nil {
				r(limit)
			}
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			ws, err := l.upgrade(c)
			l.release(c, ip)
			if err != nil {
				l.t.cfg.Logger.Debug("websocket upgrade failed", "remote", c.RemoteMultiaddr(), "err", err)
				drop(c, scope)
				return
			}
			if u, ok := c.(Upgradable); ok {
				u.Upgraded()
			}
			select {
			case l.incoming <- accepted{ws, scope}:
			case <-l.closed:
				ws.Close()
				scope.Done()
			}
		}()
	}
}

// Upgradable is a connection, as the upgrader's listener gate hands it
// over, that wants to know when its HTTP upgrade is done: a gate that
// tells talking peers from silent ones (relay.Gate) must not take the
// upgrade request for the start of a security handshake, or any number
// of upgrades followed by silence would pass for honest peers.
type Upgradable interface {
	Upgraded()
}

func drop(c net.Conn, scope network.ConnManagementScope) {
	c.Close()
	scope.Done()
}

func remoteIP(c manet.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// reserve counts an un-upgraded connection; over a cap it returns the
// limit's name instead.
func (l *wsListener) reserve(c net.Conn, ip netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.pending == nil:
		return "closed"
	case len(l.pending) >= l.t.cfg.MaxPending:
		return "ws-pending"
	case l.perIP[ip] >= l.t.cfg.MaxPendingPerIP:
		return "ws-pending-per-ip"
	}
	l.pending[c] = struct{}{}
	l.perIP[ip]++
	return ""
}

func (l *wsListener) release(c net.Conn, ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.pending, c)
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// Pending reports the connections accepted and not yet upgraded.
func (l *wsListener) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}

// upgrade runs the TLS handshake on /tls/ws, then reads one HTTP request
// (size-capped) and answers it with the WebSocket upgrade, all before one
// deadline.
func (l *wsListener) upgrade(c manet.Conn) (*Conn, error) {
	deadline := time.Now().Add(l.t.cfg.HandshakeTimeout)
	var nc net.Conn = c
	if l.tls != nil {
		if err := c.SetDeadline(deadline); err != nil {
			return nil, err
		}
		// TLS reads the socket through the read-ahead, as gorilla does
		// on /ws: records come in a pooled buffer while data flows.
		tc := tls.Server(withReadAhead(c), l.tls)
		if err := tc.Handshake(); err != nil {
			tc.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		nc = tc
	}
	ws, err := upgrade(nc, &l.up, deadline)
	if err != nil {
		if nc != net.Conn(c) {
			nc.Close() // gives the read-ahead's buffer back; the caller closes c
		}
		return nil, err
	}
	secure := l.tls != nil
	return newConn(ws, c.LocalMultiaddr().Encapsulate(wsSuffix(secure)),
		c.RemoteMultiaddr().Encapsulate(wsSuffix(secure))), nil
}

// upgrade reads one HTTP request from c and answers it with the WebSocket
// upgrade, before deadline; it clears the deadline on success.
func upgrade(c net.Conn, up *websocket.Upgrader, deadline time.Time) (*websocket.Conn, error) {
	if err := c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	// The request reader is small and dropped after the upgrade; gorilla
	// reads the connection through its own buffer of AcceptReadBuffer bytes.
	br := bufio.NewReaderSize(io.LimitReader(c, maxRequestBytes), 1024)
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, fmt.Errorf("read upgrade request: %w", err)
	}
	w := &hijackWriter{c: c, rw: bufio.NewReadWriter(br, bufio.NewWriterSize(c, 256)), h: http.Header{}}
	ws, err := up.Upgrade(w, req, nil)
	if err != nil {
		if !w.hijacked {
			w.finish()
		}
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		ws.Close()
		return nil, err
	}
	return ws, nil
}

func (l *wsListener) Accept() (manet.Conn, network.ConnManagementScope, error) {
	select {
	case a := <-l.incoming:
		return a.c, a.scope, nil
	case <-l.closed:
		return nil, nil, transport.ErrListenerClosed
	}
}

// Close stops accepting, closes connections still upgrading, and waits for
// its goroutines.
func (l *wsListener) Close() error {
	l.closeOnce.Do(func() {
		close(l.closed)
		l.closeErr = l.gated.Close()
		// Upgrades in flight end at once instead of at their deadline.
		l.mu.Lock()
		for c := range l.pending {
			c.Close()
		}
		l.pending = nil
		l.mu.Unlock()
		l.wg.Wait()
	})
	return l.closeErr
}

func (l *wsListener) Multiaddr() ma.Multiaddr { return l.laddr }
func (l *wsListener) Addr() net.Addr          { return l.gated.Addr() }

// hijackWriter is the http.ResponseWriter gorilla's Upgrader needs: it
// hands over the raw connection, or writes a plain error response.
type hijackWriter struct {
	c        net.Conn
	rw       *bufio.ReadWriter
	h        http.Header
	status   int
	body     []byte
	hijacked bool
}

func (w *hijackWriter) Header() http.Header { return w.h }
func (w *hijackWriter) WriteHeader(s int)   { w.status = s }
func (w *hijackWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, b...)
	return len(b), nil
}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, errors.New("hijacked twice")
	}
	w.hijacked = true
	return withReadAhead(w.c), w.rw, nil
}

// finish sends the refusal gorilla composed (status, headers, body).
func (w *hijackWriter) finish() {
	if w.status == 0 {
		return
	}
	resp := http.Response{
		StatusCode: w.status, ProtoMajor: 1, ProtoMinor: 1,
		Header: w.h, ContentLength: int64(len(w.body)), Close: true,
		Body: io.NopCloser(bytes.NewReader(w.body)),
	}
	_ = resp.Write(w.c)
}
