// Package wstransport is a libp2p transport over WebSocket (/ws, and
// /tls/ws or /wss with TLS), on the wire the same as go-libp2p's own: an
// HTTP/1.1 upgrade, then binary messages carrying the connection's byte
// stream (one Write, one message).
//
// It exists for what go-libp2p v0.51's transport does not let a relay set:
// buffer sizes (its 4 KiB write buffer splits every 16 KiB TLS record into
// several frames and writes, docs/datapath.md), pooled write buffers and a
// read-ahead that takes a buffer only while data flows, so an idle
// connection holds none, and caps on connections that have not finished
// their upgrade, in total and per IP. Both bound the upgrade in time:
// go-libp2p with WithHandshakeTimeout (15 s by default, dialing and
// accepting), this one with Config.HandshakeTimeout on the accepting side
// (5 s by default) and the swarm's dial timeout on the dialing side.
// A /tls/ws listener serves a certificate from files and picks up a
// renewed one without a restart (Config.CertFile).
package wstransport

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Defaults; bench/datapath and bench/capacity measured them (docs/datapath.md).
const (
	// DefaultWriteBuffer holds a whole TLS record (16384 bytes of plaintext
	// + 22) in one frame, so each record leaves in one write system call;
	// gorilla adds room for the frame header itself. Buffers are pooled:
	// an idle connection holds none.
	DefaultWriteBuffer = 16<<10 + 64
	// DefaultReadBuffer is gorilla's read buffer on dialed connections,
	// held for the connection's whole life. A smaller one costs a peer
	// receiving from a stock go-libp2p sender (which writes a record as
	// 4 KiB + 12 KiB) more CPU per byte (docs/datapath.md); a peer dials
	// only a few connections, so memory does not argue for less.
	DefaultReadBuffer = 4 << 10
	// DefaultAcceptReadBuffer is gorilla's read buffer on accepted
	// connections: a relay holds one per reserved peer for the peer's whole
	// stay. Under it a read-ahead takes 64 KiB from a pool only while the
	// socket has data (readahead.go), so gorilla's small reads are copies,
	// not system calls, and a small buffer costs no relay CPU
	// (docs/datapath.md). Gorilla's floor is 125 bytes, a control frame.
	DefaultAcceptReadBuffer = 512
	// DefaultHandshakeTimeout bounds, on the accepting side, TCP accept to
	// WebSocket upgrade. A
	// libp2p dialer sends its upgrade request at once; a connection silent
	// for this long is a broken or hostile client.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultMaxPending caps connections accepted but not yet upgraded, and
	// DefaultMaxPendingPerIP those of one remote IP: both bound what
	// slow or silent clients can hold (a goroutine and a few KiB each, for
	// the handshake timeout at most). Per IP stays well above what a NAT
	// full of peers reconnecting at once needs: an upgrade takes about a
	// millisecond, so only a burst of hundreds in one instant meets it.
	DefaultMaxPending      = 1024
	DefaultMaxPendingPerIP = 256
	// maxRequestBytes caps the upgrade request (line and headers); libp2p
	// sends ~200 bytes, browsers ~1 KiB.
	maxRequestBytes = 8 << 10
)

// Config holds the transport's tunables; zero fields take the defaults.
type Config struct {
	// ReadBuffer is the read buffer of dialed connections, AcceptReadBuffer
	// that of accepted ones.
	ReadBuffer, AcceptReadBuffer, WriteBuffer int
	// NoWritePool gives every connection its own write buffer for its
	// whole life instead of taking one from a pool for each message.
	NoWritePool      bool
	HandshakeTimeout time.Duration
	MaxPending       int
	MaxPendingPerIP  int
	// Proxy picks the HTTP proxy of a dial; nil means the environment's
	// (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), so WebSocket passes proxies.
	Proxy func(*http.Request) (*url.URL, error)
	// TLSClient is the TLS configuration of /wss and /tls/ws dials (nil:
	// system roots); the server name is set per dial.
	TLSClient *tls.Config
	// CAFile, when set, is a PEM file of the CA certificates that /wss
	// and /tls/ws dials trust in place of the system roots (TLSClient's).
	CAFile string
	// TLS is the server configuration of /tls/ws (/wss) listeners, as
	// go-libp2p's WithTLSConfig. Nil: built from CertFile and KeyFile;
	// with neither, a /tls/ws listen address is an error.
	TLS *tls.Config
	// CertFile and KeyFile are PEM files of the certificate chain and key
	// that /tls/ws listeners serve. They are checked at most every
	// CertCheckInterval (DefaultCertCheckInterval) on a handshake: a
	// renewed pair put in their place is served to new handshakes from
	// then on, with no restart; a pair that does not load leaves the
	// previous one in service.
	CertFile, KeyFile string
	CertCheckInterval time.Duration
	// Logger receives the transport's few log lines (a listener that
	// stops, upgrades that fail, certificate reloads); nil: slog.Default().
	Logger *slog.Logger
	// Refused, when set, is told of every connection closed over a pending
	// cap, by limit ("ws-pending", "ws-pending-per-ip"): the caller counts
	// and logs refusals (the node feeds its relay's refusal counts).
	Refused func(limit string)
}

// Option changes the Config of New.
type Option func(*Config) error

// WithBuffers sets the read and write buffer sizes (bytes; 0 keeps the default).
func WithBuffers(read, write int) Option {
	return func(c *Config) error {
		if read < 0 || write < 0 {
			return fmt.Errorf("websocket buffers: negative size (%d, %d)", read, write)
		}
		if read > 0 {
			c.ReadBuffer = read
		}
		if write > 0 {
			c.WriteBuffer = write
		}
		return nil
	}
}

// WithConfig replaces the whole Config (zero fields take the defaults).
func WithConfig(cfg Config) Option {
	return func(c *Config) error {
		*c = cfg
		return nil
	}
}

// Transport dials and listens on /ws and /tls/ws (/wss) addresses.
type Transport struct {
	up     transport.Upgrader
	rcmgr  network.ResourceManager
	cfg    Config
	pool   websocket.BufferPool
	dialer websocket.Dialer
	certs  *certFiles // nil unless the listeners' certificate comes from files
}

var _ transport.Transport = (*Transport)(nil)

// New returns a transport; libp2p.Transport(wstransport.New, opts...) hands it
// the host's upgrader and resource manager.
func New(up transport.Upgrader, rcmgr network.ResourceManager, opts ...Option) (*Transport, error) {
	if rcmgr == nil {
		rcmgr = &network.NullResourceManager{}
	}
	t := &Transport{up: up, rcmgr: rcmgr}
	for _, o := range opts {
		if err := o(&t.cfg); err != nil {
			return nil, err
		}
	}
	c := &t.cfg
	if c.ReadBuffer <= 0 {
		c.ReadBuffer = DefaultReadBuffer
	}
	if c.AcceptReadBuffer <= 0 {
		c.AcceptReadBuffer = DefaultAcceptReadBuffer
	}
	if c.WriteBuffer <= 0 {
		c.WriteBuffer = DefaultWriteBuffer
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxPendingPerIP <= 0 {
		c.MaxPendingPerIP = DefaultMaxPendingPerIP
	}
	if !c.NoWritePool {
		// One pool per transport: gorilla wants one pool per buffer size.
		t.pool = &sync.Pool{}
	}
	if c.Proxy == nil {
		c.Proxy = http.ProxyFromEnvironment
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	certs, err := c.loadTLS()
	if err != nil {
		return nil, err
	}
	t.certs = certs
	t.dialer = websocket.Dialer{
		Proxy:          c.Proxy,
		NetDialContext: dialReadAhead,
		// No handshake timeout of its own: the swarm's dial context bounds a
		// dial (15 s), and a slow proxy on a slow link may need most of it.
		ReadBufferSize:  c.ReadBuffer,
		WriteBufferSize: c.WriteBuffer,
		WriteBufferPool: t.pool,
	}
	return t, nil
}

// loadTLS builds the listeners' TLS configuration from CertFile and
// KeyFile, and the dials' root CAs from CAFile.
func (c *Config) loadTLS() (*certFiles, error) {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, fmt.Errorf("websocket TLS: a certificate needs its key and a key its certificate (certificate %q, key %q)", c.CertFile, c.KeyFile)
	}
	if c.CertCheckInterval <= 0 {
		c.CertCheckInterval = DefaultCertCheckInterval
	}
	var certs *certFiles
	if c.TLS == nil && c.CertFile != "" {
		f, err := loadCertFiles(c.CertFile, c.KeyFile, c.CertCheckInterval, c.Logger)
		if err != nil {
			return nil, fmt.Errorf("websocket TLS certificate: %w", err)
		}
		c.TLS = &tls.Config{GetCertificate: f.getCertificate, MinVersion: tls.VersionTLS12}
		certs = f
	}
	if c.CAFile != "" {
		pool, err := loadCAFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("websocket TLS CA file: %w", err)
		}
		tc := &tls.Config{}
		if c.TLSClient != nil {
			tc = c.TLSClient.Clone()
		}
		tc.RootCAs = pool
		c.TLSClient = tc
	}
	return certs, nil
}

// Config returns the effective configuration (defaults filled in).
func (t *Transport) Config() Config { return t.cfg }

// CanDial reports whether a is /ip4|ip6|dns*/tcp/N followed by /ws, /wss,
// /tls/ws or /tls/sni/NAME/ws.
func (t *Transport) CanDial(a ma.Multiaddr) bool {
	_, err := parseAddr(a)
	return err == nil
}

// Protocols are the multiaddr protocols this transport answers for.
func (t *Transport) Protocols() []int { return []int{ma.P_WS, ma.P_WSS} }

// Proxy is false: a WebSocket connection is a direct one to libp2p.
func (t *Transport) Proxy() bool { return false }

func (t *Transport) String() string { return "websocket" }

// Dial opens a WebSocket connection to raddr and upgrades it to a libp2p one.
func (t *Transport) Dial(ctx context.Context, raddr ma.Multiaddr, p peer.ID) (transport.CapableConn, error) {
	scope, err := t.rcmgr.OpenConnection(network.DirOutbound, true, raddr)
	if err != nil {
		return nil, fmt.Errorf("websocket dial %s: %w", raddr, err)
	}
	c, err := t.dial(ctx, raddr)
	if err != nil {
		scope.Done()
		return nil, fmt.Errorf("websocket dial %s: %w", raddr, err)
	}
	// The upgrader ends the scope when it fails.
	cc, err := t.up.Upgrade(ctx, t, c, network.DirOutbound, p, scope)
	if err != nil {
		return nil, err
	}
	return capableConn{cc}, nil
}

func (t *Transport) dial(ctx context.Context, raddr ma.Multiaddr) (*Conn, error) {
	pa, err := parseAddr(raddr)
	if err != nil {
		return nil, err
	}
	d := t.dialer
	u := url.URL{Scheme: "ws", Host: pa.hostPort, Path: "/"}
	if pa.secure {
		u.Scheme = "wss"
		tc := &tls.Config{}
		if t.cfg.TLSClient != nil {
			tc = t.cfg.TLSClient.Clone()
		}
		tc.ServerName = pa.serverName
		d.TLSClientConfig = tc
		if pa.sni != "" && pa.sni != pa.host {
			// The address names the IP to reach and the name to present.
			u.Host = net.JoinHostPort(pa.sni, pa.port)
			d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				if addr == u.Host {
					addr = pa.hostPort
				}
				return dialReadAhead(ctx, network, addr)
			}
		}
	}
	ws, resp, err := d.DialContext(ctx, u.String(), nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	laddr, err := manet.FromNetAddr(ws.NetConn().LocalAddr())
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("local address: %w", err)
	}
	rnet, err := manet.FromNetAddr(ws.NetConn().RemoteAddr())
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("remote address: %w", err)
	}
	return newConn(ws, laddr.Encapsulate(wsSuffix(pa.secure)), rnet.Encapsulate(wsSuffix(pa.secure))), nil
}

// Resolve keeps the DNS name of a /dns*/tcp/N/wss (or /tls/ws) address as
// its TLS server name, /tls/sni/NAME/ws, before the swarm replaces the name
// with IP addresses; other addresses come back unchanged.
func (t *Transport) Resolve(_ context.Context, a ma.Multiaddr) ([]ma.Multiaddr, error) {
	pa, err := parseAddr(a)
	if err != nil {
		return nil, err
	}
	if !pa.secure || pa.sni != "" || pa.serverName == "" {
		return []ma.Multiaddr{a}, nil
	}
	sni, err := ma.NewComponent("sni", pa.serverName)
	if err != nil {
		return nil, fmt.Errorf("sni %q: %w", pa.serverName, err)
	}
	out := append(ma.Multiaddr{}, a[:2]...)
	out = append(out, ma.StringCast("/tls")...)
	out = append(out, *sni)
	return []ma.Multiaddr{append(out, ma.StringCast("/ws")...)}, nil
}

var _ transport.Resolver = (*Transport)(nil)

// Listen listens on a /ip4|ip6/tcp/N/ws address, or with TLS on
// /tcp/N/tls/ws or /tcp/N/wss (announced as /tls/ws).
func (t *Transport) Listen(a ma.Multiaddr) (transport.Listener, error) {
	l, err := t.listen(a)
	if err != nil {
		return nil, fmt.Errorf("websocket listen %s: %w", a, err)
	}
	return listener{t.up.UpgradeGatedMaListener(t, l)}, nil
}

// capableConn names the transport in the connection's state, as go-libp2p's does.
type capableConn struct{ transport.CapableConn }

func (c capableConn) ConnState() network.ConnectionState {
	cs := c.CapableConn.ConnState()
	cs.Transport = "websocket"
	return cs
}

type listener struct{ transport.Listener }

func (l listener) Accept() (transport.CapableConn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return capableConn{c}, nil
}
