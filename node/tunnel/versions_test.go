package tunnel_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node/limits"
	"github.com/overlay-net/overlay/node/resume"
	"github.com/overlay-net/overlay/node/tunnel"
)

// anyMember admits every peer: the benchmarks below measure the data
// path between two bare hosts, not the handshake.
type anyMember struct{ h host.Host }

func (m anyMember) EnsureMember(ctx context.Context, p peer.ID) error {
	return m.h.Connect(ctx, m.h.Peerstore().PeerInfo(p))
}
func (anyMember) IsMember(context.Context, peer.ID) bool { return true }

// bareTunnels starts a tunnel service on each of two hosts joined over
// loopback TCP, over resumable sessions (2.0.0) or not (1.0.0).
func bareTunnels(b testing.TB, resumable bool) (x, y *tunnel.Service, yID peer.ID) {
	return bareTunnelsEach(b, resumable, resumable)
}

// bareTunnelsEach is bareTunnels with each side's version apart.
func bareTunnelsEach(b testing.TB, resumableX, resumableY bool) (x, y *tunnel.Service, yID peer.ID) {
	var svcs []*tunnel.Service
	var hosts []host.Host
	for _, resumable := range []bool{resumableX, resumableY} {
		rm, err := limits.Private()
		if err != nil {
			b.Fatal(err)
		}
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), rm)
		if err != nil {
			b.Fatal(err)
		}
		cfg := tunnel.Config{}
		if resumable {
			m, err := resume.New(h, resume.Config{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(m.Close)
			cfg.Sessions = m
		}
		s, err := tunnel.New(h, anyMember{h}, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close(); h.Close() })
		svcs, hosts = append(svcs, s), append(hosts, h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hosts[0].Connect(ctx, peer.AddrInfo{ID: hosts[1].ID(), Addrs: hosts[1].Addrs()}); err != nil {
		b.Fatal(err)
	}
	return svcs[0], svcs[1], hosts[1].ID()
}

// BenchmarkTunnelVersions reads benchSize bytes per op from a source
// service through a forward, direct over TCP between two bare hosts: the
// cost of a resumable tunnel (2.0.0) against a plain stream (1.0.0).
func BenchmarkTunnelVersions(b *testing.B) {
	for _, v := range []struct {
		name      string
		resumable bool
	}{{"1.0.0", false}, {"2.0.0", true}} {
		b.Run(v.name, func(b *testing.B) {
			x, y, yID := bareTunnels(b, v.resumable)
			zeros := make([]byte, 64<<10)
			src := serve(b, func(c net.Conn) {
				for sent := 0; sent < benchSize; sent += len(zeros) {
					if _, err := c.Write(zeros); err != nil {
						return
					}
				}
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
			})
			if _, err := y.Expose(tunnel.Exposure{Name: "src", Target: src.addr()}, false); err != nil {
				b.Fatal(err)
			}
			f, err := x.Forward("127.0.0.1:0", yID, "src")
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 64<<10)
			b.SetBytes(benchSize)
			b.ResetTimer()
			for range b.N {
				c := dial(b, f.Listen)
				n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
				if err != nil || n != benchSize {
					b.Fatalf("read %d of %d: %v", n, benchSize, err)
				}
				c.Close()
			}
		})
	}
}

// A member of an older release (tunnel 1.0.0 only) is served and reached
// as before: a forward that speaks 2.0.0 falls back to 1.0.0, and a
// 1.0.0 forward is served by a node that speaks both.
func TestTunnelFallsBackToVersion1(t *testing.T) {
	for _, c := range []struct {
		name         string
		fwdV2, srvV2 bool
	}{{"2.0.0 forward to a 1.0.0 member", true, false}, {"1.0.0 forward to a 2.0.0 member", false, true}} {
		t.Run(c.name, func(t *testing.T) {
			x, y, yID := bareTunnelsEach(t, c.fwdV2, c.srvV2)
			svc := serve(t, echo)
			if _, err := y.Expose(tunnel.Exposure{Name: "echo", Target: svc.addr()}, false); err != nil {
				t.Fatal(err)
			}
			f, err := x.Forward("127.0.0.1:0", yID, "echo")
			if err != nil {
				t.Fatal(err)
			}
			conn := dial(t, f.Listen)
			if err := roundTrip(conn, "older release"); err != nil {
				t.Fatal(err)
			}
			ts := x.Tunnels()
			if len(ts) != 1 || ts[0].Resumable || ts[0].Conn == nil {
				t.Fatalf("tunnels at the forward: %+v, want one 1.0.0 tunnel", ts)
			}
		})
	}
}
