package tunnel_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/node/tunnel"
	"github.com/overlay-net/overlay/protocol"
)

// relayedPair starts a relay and two WebSocket-only peers reserved on it:
// every byte between a and b goes through the relay.
func relayedPair(t testing.TB, opts ...nt.Option) (r, a, b *node.Node) {
	t.Helper()
	r = nt.Relay(t)
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a = nt.Peer(t, relays, opts...)
	b = nt.Peer(t, relays, opts...)
	nt.Eventually(t, 10*time.Second, "both peers reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
	return r, a, b
}

// server is a TCP service for tests: it runs handle on every connection
// and closes them all, and waits for its goroutines, at cleanup.
type server struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func serve(t testing.TB, handle func(net.Conn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, handle)
}

func serveOn(t testing.TB, ln net.Listener, handle func(net.Conn)) *server {
	s := &server{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				handle(c)
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

// dropAll closes every open connection of the server.
func (s *server) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

func (s *server) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *server) close() {
	s.ln.Close()
	s.dropAll()
	s.wg.Wait()
}

// echo writes back what it reads, passing the client's half-close on.
func echo(c net.Conn) {
	if _, err := io.Copy(c, c); err == nil {
		c.(*net.TCPConn).CloseWrite()
	}
	io.Copy(io.Discard, c)
}

// expose exposes addr as name on n.
func expose(t testing.TB, n *node.Node, name, addr string, allow ...*node.Node) {
	t.Helper()
	e := tunnel.Exposure{Name: name, Target: addr}
	for _, a := range allow {
		e.Allow = append(e.Allow, a.ID())
	}
	if _, err := n.Tunnels().Expose(e, false); err != nil {
		t.Fatal(err)
	}
}

// forward makes from forward a loopback port to name on to and returns the
// port's address.
func forward(t testing.TB, from, to *node.Node, name string) string {
	t.Helper()
	f, err := from.Tunnels().Forward("127.0.0.1:0", to.ID(), name)
	if err != nil {
		t.Fatal(err)
	}
	return f.Listen
}

// dial connects to a forward's port.
func dial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip writes msg on c and reads it back from an echo service.
func roundTrip(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return roundTripNoDeadline(c, msg)
}

// roundTripNoDeadline is roundTrip under the caller's deadline, which it
// clears.
func roundTripNoDeadline(c net.Conn, msg string) error {
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo changed the bytes")
	}
	return nil
}

// tunnelStreams counts n's open streams of the tunnel protocol.
func tunnelStreams(n *node.Node) int {
	k := 0
	for _, c := range n.Host().Network().Conns() {
		for _, s := range c.GetStreams() {
			switch s.Protocol() {
			case protocol.TunnelID, protocol.TunnelID2, protocol.ResumeID:
				k++
			}
		}
	}
	return k
}

// quiet reports whether neither node carries a tunnel or holds a tunnel stream.
func quiet(ns ...*node.Node) bool {
	for _, n := range ns {
		if n.Tunnels().Live() > 0 || tunnelStreams(n) > 0 {
			return false
		}
	}
	return true
}

// rawRequest opens a tunnel stream from a to b's service name without a's
// tunnel service, and returns the answer.
func rawRequest(ctx context.Context, from, to *node.Node, name string) (protocol.TunnelAnswer, error) {
	s, err := from.Host().NewStream(network.WithAllowLimitedConn(ctx, "test"), to.ID(), protocol.TunnelID)
	if err != nil {
		return protocol.TunnelAnswer{}, err
	}
	defer s.Reset()
	if err := protocol.WriteTunnelRequest(s, name); err != nil {
		return protocol.TunnelAnswer{}, err
	}
	return protocol.ReadTunnelAnswer(s, 10*time.Second)
}
