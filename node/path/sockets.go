package path

import (
	"context"
	"net"
	"sync"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
	"go.uber.org/fx"
)

// maxSockets bounds the UDP sockets Sockets remembers: the QUIC listen
// socket and the few dial sockets quicreuse opens when none listens.
const maxSockets = 8

// Sockets remembers the IPv4 UDP sockets go-libp2p's QUIC transport
// listens and dials on, by local port, so the node can send its own
// packets (a pre-punch, see prepunch.go) from the very port a QUIC hole
// punch will use, with a send option quicreuse's shared non-QUIC
// connection does not offer (the IP TTL). It never reads from them: QUIC
// keeps every packet that arrives.
type Sockets struct {
	mu  sync.Mutex
	udp []*net.UDPConn // newest last, at most maxSockets
}

// NewSockets returns an empty set; hand QUICReuse to the libp2p host.
func NewSockets() *Sockets { return &Sockets{} }

// listenUDP is quicreuse's listenUDP: net.ListenUDP, as its default, and
// the socket remembered.
func (s *Sockets) listenUDP(network string, laddr *net.UDPAddr) (net.PacketConn, error) {
	c, err := net.ListenUDP(network, laddr)
	if err != nil || network != "udp4" {
		return c, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	port := c.LocalAddr().(*net.UDPAddr).Port
	s.udp = append(removePort(s.udp, port), c)
	if len(s.udp) > maxSockets {
		s.udp = s.udp[len(s.udp)-maxSockets:]
	}
	return c, nil
}

func removePort(cs []*net.UDPConn, port int) []*net.UDPConn {
	out := cs[:0]
	for _, c := range cs {
		if c.LocalAddr().(*net.UDPAddr).Port != port {
			out = append(out, c)
		}
	}
	return out
}

// udpConn returns the remembered IPv4 socket bound to port, nil if none.
// It may have been closed since: a send on it then fails with net.ErrClosed.
func (s *Sockets) udpConn(port int) *net.UDPConn {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.udp {
		if c.LocalAddr().(*net.UDPAddr).Port == port {
			return c
		}
	}
	return nil
}

// QUICReuse is the libp2p option that builds the host's QUIC connection
// manager as go-libp2p's default does (connections scoped by the resource
// manager, source addresses verified by it, metrics to reg, closed with the
// host) but with its UDP sockets opened by s. reg nil: Prometheus' default
// registerer, as libp2p's default.
func (s *Sockets) QUICReuse(reg prometheus.Registerer) libp2p.Option {
	if reg == nil {
		reg = prometheus.DefaultRegisterer
	}
	return libp2p.QUICReuse(func(key quic.StatelessResetKey, tokens quic.TokenGeneratorKey,
		rcmgr network.ResourceManager, lc fx.Lifecycle) (*quicreuse.ConnManager, error) {
		cm, err := quicreuse.NewConnManager(key, tokens,
			quicreuse.OverrideListenUDP(s.listenUDP),
			quicreuse.ConnContext(func(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
				addr, err := quicreuse.ToQuicMultiaddr(ci.RemoteAddr, quic.Version1)
				if err != nil {
					addr = nil // the resource manager decides without it
				}
				scope, err := rcmgr.OpenConnection(network.DirInbound, false, addr)
				if err != nil {
					return ctx, err
				}
				ctx = network.WithConnManagementScope(ctx, scope)
				context.AfterFunc(ctx, scope.Done)
				return ctx, nil
			}),
			quicreuse.VerifySourceAddress(rcmgr.VerifySourceAddress),
			quicreuse.EnableMetrics(reg))
		if err != nil {
			return nil, err
		}
		lc.Append(fx.StopHook(cm.Close))
		return cm, nil
	})
}
