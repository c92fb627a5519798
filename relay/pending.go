package relay

import (
	"container/list"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/p2p/transport/tcpreuse"
	manet "github.com/multiformats/go-multiaddr/net"
)

// DefaultPendingTimeout is how long an inbound connection may take from
// accept to a finished security handshake. An honest peer needs a few round
// trips (well under a second); libp2p's own bound is 15 s, which let ~256
// idle sockets lock every newcomer out for that long (docs/SECURITY.md).
const DefaultPendingTimeout = 5 * time.Second

// Gate bounds inbound connections that have not finished their security
// handshake ("pending"): in total, per IP, and in time. When a bound is
// reached, the oldest pending connection (of that IP, or of all) is closed
// to make room, rather than the newcomer refused: a flood of silent
// sockets then churns through its own slots, while an honest peer, which
// finishes within milliseconds, gets in. libp2p's resource manager instead
// refuses the newcomer once its transient limit is full.
//
// It works on the transports' listeners by wrapping the upgrader they are
// built with (Upgrader, TCP): a connection counts from its TCP accept
// until its security handshake ends. A WebSocket connection counts as
// silent again once its HTTP upgrade is done (watchedConn.Upgraded).
type Gate struct {
	max, perIP int
	timeout    time.Duration
	ref        *Refusals

	mu   sync.Mutex
	all  *list.List // of *pending, oldest first
	byIP map[string]*list.List
}

type pending struct {
	c           manet.Conn
	ip          string
	inAll, inIP *list.Element
	timer       *time.Timer
	removed     bool
	talked      atomic.Bool // the peer sent a byte
	at          time.Time   // accepted
}

// talkerGrace protects a pending connection that is talking from being
// closed for a newcomer while it is younger than this. A burst of honest
// peers (a whole network reconnecting after a relay restart, on a loaded
// machine) fills the bound with talkers whose handshakes take hundreds of
// milliseconds: closing the oldest for each newcomer would cut every one
// of them before it finished, and nobody would get in. Below the grace the
// newcomer is refused instead and retries; a slow-loris talker is older
// than the grace long before its 5 s run out.
const talkerGrace = time.Second

// NewGate returns a gate holding at most max pending connections, perIP
// from one IPv4 address (or IPv6 /56), each for at most timeout. Refusals
// (evictions and timeouts) are counted and logged through ref.
func NewGate(max, perIP int, timeout time.Duration, ref *Refusals) *Gate {
	if ref == nil {
		ref = NewRefusals(nil)
	}
	return &Gate{max: max, perIP: min(perIP, max), timeout: timeout, ref: ref,
		all: list.New(), byIP: map[string]*list.List{}}
}

// Pending returns how many connections are pending now.
func (g *Gate) Pending() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.all.Len()
}

func (g *Gate) admit(c manet.Conn) *pending {
	p := &pending{c: c, ip: ipKey(c), at: time.Now()}
	g.mu.Lock()
	l := g.byIP[p.ip]
	if l == nil {
		l = list.New()
		g.byIP[p.ip] = l
	}
	p.inAll, p.inIP = g.all.PushBack(p), l.PushBack(p)
	var victim *pending
	var reason string
	switch {
	case l.Len() > g.perIP:
		victim, reason = oldestSilent(l, p.at), "pending-per-ip"
	case g.all.Len() > g.max:
		victim, reason = oldestSilent(g.all, p.at), "pending-total"
	}
	if victim != nil {
		g.removeLocked(victim)
	}
	if victim == p {
		g.mu.Unlock()
		g.ref.Add(reason)
		p.c.Close()
		return p
	}
	p.timer = time.AfterFunc(g.timeout, func() {
		if g.remove(p) {
			g.ref.Add("pending-timeout")
			p.c.Close()
		}
	})
	g.mu.Unlock()
	if victim != nil {
		// The victim's owner (upgrader or HTTP server) sees the close,
		// fails its handshake and releases the resource scope.
		g.ref.Add(reason)
		victim.c.Close()
	}
	return p
}

// oldestSilent picks the victim in l: the oldest connection that has sent
// nothing yet, else the oldest. An honest peer speaks at once (an HTTP
// upgrade, or multistream), so a flood of silent sockets that re-opens
// each one as soon as it is closed evicts only its own, never a newcomer
// that is talking, however fast it churns.
//
// The newcomer, at the back, has had no time to speak: it is never the
// silent pick, so a bound full of slow talkers (slow-loris) still makes
// room for it by closing the oldest, once that one is past talkerGrace;
// before that, the newcomer itself is the one refused.
func oldestSilent(l *list.List, now time.Time) *pending {
	for e := l.Front(); e != nil && e.Next() != nil; e = e.Next() {
		if p := e.Value.(*pending); !p.talked.Load() {
			return p
		}
	}
	if oldest := l.Front().Value.(*pending); now.Sub(oldest.at) >= talkerGrace {
		return oldest
	}
	return l.Back().Value.(*pending)
}

// remove forgets p, reporting whether it was still pending.
func (g *Gate) remove(p *pending) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p.removed {
		return false
	}
	g.removeLocked(p)
	return true
}

func (g *Gate) removeLocked(p *pending) {
	if p.removed {
		return
	}
	p.removed = true
	if p.timer != nil {
		p.timer.Stop()
	}
	g.all.Remove(p.inAll)
	if l := g.byIP[p.ip]; l != nil {
		l.Remove(p.inIP)
		if l.Len() == 0 {
			delete(g.byIP, p.ip)
		}
	}
}

// ipKey names the address a connection counts against: the IPv4 address,
// or the IPv6 /56 (one subscriber's allocation).
func ipKey(c manet.Conn) string {
	ip, err := manet.ToIP(c.RemoteMultiaddr())
	if err != nil {
		return "?"
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(56, 128)).String()
}

// Upgrader wraps u so that the listeners it gates pass through g.
func (g *Gate) Upgrader(u transport.Upgrader) transport.Upgrader { return gatedUpgrader{u, g} }

// TCP is a libp2p.Transport constructor: libp2p's TCP transport behind g.
func (g *Gate) TCP(u transport.Upgrader, rm network.ResourceManager, shared *tcpreuse.ConnMgr) (*tcp.TcpTransport, error) {
	return tcp.NewTCPTransport(g.Upgrader(u), rm, shared)
}

type gatedUpgrader struct {
	transport.Upgrader
	g *Gate
}

func (u gatedUpgrader) GateMaListener(l manet.Listener) transport.GatedMaListener {
	return gatedListener{u.Upgrader.GateMaListener(l), u.g}
}

//lint:ignore SA1019 part of the interface
func (u gatedUpgrader) UpgradeListener(t transport.Transport, l manet.Listener) transport.Listener {
	return u.Upgrader.UpgradeGatedMaListener(t, u.GateMaListener(l))
}

type gatedListener struct {
	transport.GatedMaListener
	g *Gate
}

func (l gatedListener) Accept() (manet.Conn, network.ConnManagementScope, error) {
	c, scope, err := l.GatedMaListener.Accept()
	if err != nil {
		return c, scope, err
	}
	p := l.g.admit(c)
	return &watchedConn{c, p}, &pendingScope{ConnManagementScope: scope, g: l.g, p: p}, nil
}

// watchedConn notes the first byte a pending connection's peer sends.
type watchedConn struct {
	manet.Conn
	p *pending
}

// The TCP transport sets keepalive and linger on accepted connections: the
// wrapper must not hide them (linger 0 frees a flood's sockets at once).

func (c *watchedConn) SetKeepAlive(on bool) error {
	if k, ok := c.Conn.(interface{ SetKeepAlive(bool) error }); ok {
		return k.SetKeepAlive(on)
	}
	return errors.ErrUnsupported
}

func (c *watchedConn) SetKeepAlivePeriod(d time.Duration) error {
	if k, ok := c.Conn.(interface{ SetKeepAlivePeriod(time.Duration) error }); ok {
		return k.SetKeepAlivePeriod(d)
	}
	return errors.ErrUnsupported
}

func (c *watchedConn) SetLinger(sec int) error {
	if l, ok := c.Conn.(interface{ SetLinger(int) error }); ok {
		return l.SetLinger(sec)
	}
	return errors.ErrUnsupported
}

// Upgraded is called by our WebSocket transport once a connection's HTTP
// upgrade is done (wstransport.Upgradable): from then on the peer counts
// as silent again until it starts its security handshake, so upgrades
// followed by silence are the first to go, not the honest newcomers.
// SyscallConn passes the socket on, so that the WebSocket transport can
// wait for data before it takes a read buffer; reads still come here.
func (c *watchedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

func (c *watchedConn) Upgraded() { c.p.talked.Store(false) }

func (c *watchedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.p.talked.Load() {
		c.p.talked.Store(true)
	}
	return n, err
}

// pendingScope ends a connection's pending time when the upgrader learns
// its peer (the security handshake is done) or the connection ends.
type pendingScope struct {
	network.ConnManagementScope
	g *Gate
	p *pending
}

func (s *pendingScope) SetPeer(p peer.ID) error {
	s.g.remove(s.p)
	return s.ConnManagementScope.SetPeer(p)
}

func (s *pendingScope) Done() {
	s.g.remove(s.p)
	s.ConnManagementScope.Done()
}
