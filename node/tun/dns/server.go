package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/netutil"
)

// Limits of the server. A query and its answer fit in a few hundred bytes;
// anything that takes longer or holds more is a slow or hostile client.
const (
	// ReadTimeout bounds the wait for a query (UDP) or the next query on a
	// TCP connection.
	ReadTimeout = 2 * time.Second
	// WriteTimeout bounds writing one answer.
	WriteTimeout = 2 * time.Second
	// MaxTCPConns caps the TCP connections served at once.
	MaxTCPConns = 64
	// MaxTCPQueries caps the queries on one TCP connection.
	MaxTCPQueries = 16
	// UDPSize is the read buffer of the UDP socket: a query larger than
	// this is truncated on read and fails to parse.
	UDPSize = 1232
)

// Server answers overlay names on the sockets it is given. Close stops it.
type Server struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	servers []*mdns.Server
	closed  bool
	wg      sync.WaitGroup
}

// New returns a server that serves nothing until Serve or Listen.
func New(cfg Config) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log}
}

// ServeDNS implements miekg/dns.Handler.
func (s *Server) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	resp := s.Answer(req)
	if resp == nil {
		return
	}
	if !isStream(w.LocalAddr()) {
		size := mdns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > size {
			size = min(int(opt.UDPSize()), UDPSize)
		}
		resp.Truncate(size)
	}
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("dns: write answer", "err", err)
	}
}

// isStream reports whether a is the address of a stream (TCP) socket; gonet
// gives its own address types, so the network name decides.
func isStream(a net.Addr) bool { return a != nil && a.Network() == "tcp" }

// Serve answers queries on pc (UDP) and l (TCP), either of which may be
// nil, until Close. It returns once both are being served.
func (s *Server) Serve(pc net.PacketConn, l net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("dns: server closed")
	}
	var started []*mdns.Server
	start := func(srv *mdns.Server) error {
		up := make(chan struct{})
		errc := make(chan error, 1)
		srv.NotifyStartedFunc = func() { close(up) }
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			errc <- srv.ActivateAndServe()
		}()
		select {
		case <-up:
			started = append(started, srv)
			return nil
		case err := <-errc:
			return err
		}
	}
	common := func() *mdns.Server {
		return &mdns.Server{
			Handler: s, UDPSize: UDPSize, ReadTimeout: ReadTimeout, WriteTimeout: WriteTimeout,
			MaxTCPQueries: MaxTCPQueries,
			IdleTimeout:   func() time.Duration { return ReadTimeout },
		}
	}
	if pc != nil {
		srv := common()
		srv.PacketConn = pc
		if err := start(srv); err != nil {
			return fmt.Errorf("dns: serve udp on %s: %w", pc.LocalAddr(), err)
		}
	}
	if l != nil {
		srv := common()
		srv.Listener = netutil.LimitListener(l, MaxTCPConns)
		if err := start(srv); err != nil {
			for _, srv := range started {
				srv.Shutdown()
			}
			return fmt.Errorf("dns: serve tcp on %s: %w", l.Addr(), err)
		}
	}
	s.servers = append(s.servers, started...)
	return nil
}

// Listen serves on UDP and TCP at addr with the host's sockets (kernel
// mode: the interface's address, port 53). It returns the bound address,
// which has the real port when addr's was 0 (UDP's; TCP binds the same).
func (s *Server) Listen(addr netip.AddrPort) (netip.AddrPort, error) {
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("dns: listen udp %s: %w", addr, err)
	}
	bound := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(addr.Addr(), bound.Port())))
	if err != nil {
		pc.Close()
		return netip.AddrPort{}, fmt.Errorf("dns: listen tcp %s: %w", bound, err)
	}
	if err := s.Serve(pc, l); err != nil {
		pc.Close()
		l.Close()
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(addr.Addr(), bound.Port()), nil
}

// Close stops serving, closes the sockets and waits for the serving
// goroutines. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	servers := s.servers
	s.servers = nil
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		srv.ShutdownContext(ctx)
	}
	s.wg.Wait()
	return nil
}
