// Package tunnel carries TCP connections between members over
// protocol.TunnelID: a member exposes a local TCP service under a name, and
// another forwards a local port to it, one stream per TCP connection, over
// whatever path joins the two (direct, relayed, hole-punched). Like
// node/messaging it knows the node only through a Transport and a Members.
package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"

	"github.com/overlay-net/overlay/node/resume"
	"github.com/overlay-net/overlay/protocol"
)

// Errors of Dial and of forwarded connections. A refusal by the serving
// member is a *Refused that matches one of the first four.
var (
	ErrUnknownService = errors.New("unknown service")
	ErrNotAllowed     = errors.New("not allowed")
	ErrServiceDown    = errors.New("service down")
	ErrNotMember      = errors.New("not a member")
	ErrClosed         = errors.New("tunnel service closed")
	// ErrExists refuses to expose a name already exposed, unless replacing.
	ErrExists = errors.New("service already exposed")
	// ErrCorrupt reports a store file that could not be read as a whole:
	// New moved it aside and logged it.
	ErrCorrupt = errors.New("damaged exposed services file")
)

// DefaultDialTimeout bounds the serving side's connect to its local
// service: a service that does not answer in this long is down.
const DefaultDialTimeout = 5 * time.Second

// DefaultSetupTimeout bounds the forwarding side's setup of one tunnel:
// reaching the member, opening the stream, and its answer.
const DefaultSetupTimeout = 30 * time.Second

// Transport opens and accepts streams; a libp2p host.Host is one.
type Transport interface {
	NewStream(ctx context.Context, p peer.ID, pids ...libp2pproto.ID) (network.Stream, error)
	SetStreamHandler(pid libp2pproto.ID, handler network.StreamHandler)
	RemoveStreamHandler(pid libp2pproto.ID)
}

// Members reaches and vouches for members.
type Members interface {
	// EnsureMember makes sure a connection to the member p exists.
	EnsureMember(ctx context.Context, p peer.ID) error
	// IsMember reports whether p passed the handshake, waiting for one in
	// progress until ctx is done.
	IsMember(ctx context.Context, p peer.ID) bool
}

// Policy is what a Members may also implement: the network's access policy
// on tunnels by service name. Each method returns nil, or why not, naming
// the rule; the serving side checks every tunnel, the forwarding side
// before it opens one.
type Policy interface {
	AllowTunnelTo(to peer.ID, service string) error
	AllowTunnelFrom(from peer.ID, service string) error
}

// Config sets up a tunnel service.
type Config struct {
	// Expose are services exposed from the start (the node's configuration).
	Expose []Exposure
	// StorePath is where services exposed at run time are kept across
	// restarts ("": not kept).
	StorePath    string
	DialTimeout  time.Duration // 0: DefaultDialTimeout
	SetupTimeout time.Duration // 0: DefaultSetupTimeout
	// Targets restricts the hosts exposed services may connect to; the
	// zero value admits any.
	Targets Targets
	// Sessions, when set, carries tunnels over resumable sessions
	// (protocol.TunnelID2): a tunnel then moves to a direct path when one
	// appears, and back to a relay when it dies, without a cut. Nil: only
	// protocol.TunnelID, whose tunnels stay on the stream they opened on.
	Sessions *resume.Manager
	Logger   *slog.Logger
}

// Service serves exposed services to members and forwards local ports to
// other members' services. Close stops every listener and tunnel.
type Service struct {
	t       Transport
	members Members
	cfg     Config
	log     *slog.Logger

	mu       sync.Mutex
	exposed  map[string]Exposure
	logs     logQuota            // per-connection log lines
	forwards map[string]*forward // by bound address
	live     map[*pipe]struct{}  // tunnels carrying bytes, either side
	closed   bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts serving protocol.TunnelID on t, with the services of
// cfg.Expose and those kept at cfg.StorePath.
func New(t Transport, members Members, cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.SetupTimeout <= 0 {
		cfg.SetupTimeout = DefaultSetupTimeout
	}
	s := &Service{t: t, members: members, cfg: cfg, log: cfg.Logger,
		exposed: map[string]Exposure{}, forwards: map[string]*forward{}, live: map[*pipe]struct{}{}}
	for _, e := range cfg.Expose {
		e.Source = SourceConfig
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("exposed service in the configuration: %w", err)
		}
		if err := cfg.Targets.Check(e.Target); err != nil {
			return nil, fmt.Errorf("exposed service %s in the configuration: %w", e.Name, err)
		}
		s.exposed[e.Name] = e
	}
	switch err := s.load(); {
	case errors.Is(err, ErrCorrupt):
		// Loud, and the node goes on: it exposes less than asked, never more.
		s.log.Error("exposed services file damaged, moved aside: exposing only the configuration's services", "err", err)
	case err != nil:
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	t.SetStreamHandler(protocol.TunnelID, s.handle)
	if cfg.Sessions != nil {
		t.SetStreamHandler(protocol.TunnelID2, s.handle2)
	}
	return s, nil
}

// Close stops serving, closes every forward's listener, cuts every tunnel
// (resetting its stream and its TCP connection) and waits for their
// goroutines.
func (s *Service) Close() {
	s.t.RemoveStreamHandler(protocol.TunnelID)
	if s.cfg.Sessions != nil {
		s.t.RemoveStreamHandler(protocol.TunnelID2)
	}
	s.cancel()
	s.mu.Lock()
	s.closed = true
	for _, f := range s.forwards {
		f.ln.Close()
	}
	for p := range s.live {
		p.abort(ErrClosed)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// goRun runs fn in a goroutine that Close waits for, unless closed.
func (s *Service) goRun(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

// Refused is a serving member's refusal of a tunnel.
type Refused struct {
	Peer    peer.ID
	Service string
	Code    protocol.TunnelCode
	Reason  string
}

func (r *Refused) Error() string {
	if r.Code == protocol.TunnelNotAllowed && strings.HasPrefix(r.Reason, "this node's access policy: ") {
		return fmt.Sprintf("tunnel to %s service %q not opened: denied by %s", r.Peer, r.Service, r.Reason)
	}
	return fmt.Sprintf("%s refused service %q: %s", r.Peer, r.Service, r.Reason)
}

// Unwrap maps the code to this package's sentinel errors.
func (r *Refused) Unwrap() error {
	switch r.Code {
	case protocol.TunnelUnknownService:
		return ErrUnknownService
	case protocol.TunnelNotAllowed:
		return ErrNotAllowed
	case protocol.TunnelServiceDown:
		return ErrServiceDown
	case protocol.TunnelNotMember:
		return ErrNotMember
	}
	return nil
}

// Conn is an open tunnel: the service's bytes both ways. CloseWrite is
// the TCP half-close; Close ends the tunnel once the other side's bytes
// have been read to io.EOF (else it cuts it, as Reset does).
type Conn interface {
	io.ReadWriter
	CloseWrite() error
	Close() error
	Reset() error
}

// sessionConn is a tunnel carried by a resumable session.
type sessionConn struct {
	*resume.Session
	ctx context.Context // the service's: Close stops waiting when it ends
}

func (c sessionConn) Close() error {
	if err := c.Session.CloseWrite(); err != nil {
		return err
	}
	if !c.Session.ReadDone() {
		c.Session.Abort(errors.New("tunnel closed before the end of data"))
		return nil
	}
	// Completes within a round trip, or the session's GoneAfter, or fails.
	if err := c.Session.Wait(c.ctx); err != nil {
		c.Session.Abort(err)
		return err
	}
	return nil
}

func (c sessionConn) Reset() error {
	c.Session.Abort(errors.New("tunnel reset"))
	return nil
}

// Dial opens a tunnel to the service name of member to and returns it,
// ready to carry the service's bytes, for programs that speak to the
// service themselves rather than through a local port.
func (s *Service) Dial(ctx context.Context, to peer.ID, name string) (Conn, error) {
	if err := protocol.ValidServiceName(name); err != nil {
		return nil, err
	}
	if s.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if pol, ok := s.members.(Policy); ok {
		if err := pol.AllowTunnelTo(to, name); err != nil {
			return nil, &Refused{Peer: to, Service: name, Code: protocol.TunnelNotAllowed,
				Reason: "this node's access policy: " + err.Error()}
		}
	}
	if err := s.members.EnsureMember(ctx, to); err != nil {
		return nil, fmt.Errorf("reach %s: %w", to, err)
	}
	pids := []libp2pproto.ID{protocol.TunnelID}
	if s.cfg.Sessions != nil {
		pids = []libp2pproto.ID{protocol.TunnelID2, protocol.TunnelID}
	}
	st, err := s.t.NewStream(network.WithAllowLimitedConn(ctx, "tunnel"), to, pids...)
	if err != nil {
		return nil, fmt.Errorf("open tunnel stream to %s: %w", to, err)
	}
	v2 := st.Protocol() == protocol.TunnelID2
	id := resume.NewID()
	// The stream must not outlive ctx while the answer is awaited.
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	a, err := s.request(st, name, v2, id)
	if !stop() {
		return nil, fmt.Errorf("tunnel to %s/%s: %w", to, name, ctx.Err())
	}
	if err != nil {
		st.Reset()
		return nil, fmt.Errorf("tunnel to %s/%s: %w", to, name, err)
	}
	if !a.OK {
		st.Close()
		return nil, &Refused{Peer: to, Service: name, Code: a.Code, Reason: a.Reason}
	}
	if !v2 {
		return st, nil
	}
	sess, err := s.cfg.Sessions.Open(st, id)
	if err != nil {
		st.Reset()
		return nil, fmt.Errorf("tunnel to %s/%s: %w", to, name, err)
	}
	return sessionConn{sess, s.ctx}, nil
}

// request writes the request and reads the answer: the serving side may
// dial its service first, so the wait allows for that.
func (s *Service) request(st network.Stream, name string, v2 bool, id protocol.SessionID) (protocol.TunnelAnswer, error) {
	var err error
	if v2 {
		err = protocol.WriteTunnelRequest2(st, id, name)
	} else {
		err = protocol.WriteTunnelRequest(st, name)
	}
	if err != nil {
		return protocol.TunnelAnswer{}, fmt.Errorf("write request: %w", err)
	}
	return protocol.ReadTunnelAnswer(st, s.cfg.DialTimeout+protocol.TunnelRequestTimeout)
}

// tcpConn is what a tunnel's local end needs: both halves closed apart.
type tcpConn interface {
	net.Conn
	CloseWrite() error
}

// Live reports how many tunnels carry bytes now, served and forwarded.
func (s *Service) Live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

// Open is a tunnel carrying bytes, as Tunnels lists it.
type Open struct {
	Peer    peer.ID
	Service string // the service name when this node serves it; "": a forward
	// Resumable tells a 2.0.0 tunnel, which follows the path as it
	// changes, from a 1.0.0 one.
	Resumable bool
	// Conn is the connection that carries it now; nil while a resumable
	// tunnel waits for a new stream.
	Conn network.Conn
}

// Tunnels lists the tunnels carrying bytes now, served and forwarded.
func (s *Service) Tunnels() []Open {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Open, 0, len(s.live))
	for p := range s.live {
		o := Open{Peer: p.peer, Service: p.served}
		switch c := p.st.(type) {
		case sessionConn:
			o.Resumable, o.Conn = true, c.Session.Conn()
		case network.Stream:
			o.Conn = c.Conn()
		}
		out = append(out, o)
	}
	return out
}
