package node_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/relay"
)

// flood holds attack connections open until Close.
type flood struct {
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

// add keeps c for Close, or closes it at once when the flood is over.
func (f *flood) add(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return
	}
	f.conns = append(f.conns, c)
}

func (f *flood) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for _, c := range f.conns {
		c.Close()
	}
}

func (f *flood) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// hostPort is the host:port of a node's TCP or WebSocket address a.
func hostPort(t testing.TB, a ma.Multiaddr) string {
	t.Helper()
	var keep ma.Multiaddr
	for _, c := range a {
		if c.Protocol().Code == ma.P_WS || c.Protocol().Code == ma.P_P2P {
			break
		}
		keep = append(keep, c)
	}
	na, err := manet.ToNetAddr(keep)
	if err != nil {
		t.Fatalf("net address of %s: %v", a, err)
	}
	return na.String()
}

// idleTCP opens n TCP connections to addr that send nothing.
func idleTCP(t testing.TB, f *flood, addr string, n int) {
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Logf("idle tcp dial: %v", err)
			return
		}
		f.add(c)
	}
}

// silentWS opens n WebSocket upgrades to addr and then says nothing.
func silentWS(t testing.TB, f *flood, addr string, n int) {
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Logf("ws dial: %v", err)
			return
		}
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = bufio.NewReader(c).ReadString('\n')
		_ = c.SetReadDeadline(time.Time{})
		f.add(c)
	}
}

// slowLoris opens n connections to a WebSocket address that send an HTTP
// upgrade one header line a second, never finishing it, until f closes.
func slowLoris(t testing.TB, f *flood, addr string, n int, stop <-chan struct{}) {
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Logf("slow-loris dial: %v", err)
			return
		}
		f.add(c)
		go func() {
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n", addr)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := fmt.Fprintf(c, "X-Pad-%d: x\r\n", i); err != nil {
					return
				}
			}
		}()
	}
}

// churn keeps n idle TCP connections to addr open from n goroutines, each
// re-opened 20 ms after the relay closes it, until stop: the attacker who
// answers eviction with a new socket.
func churn(f *flood, addr string, n int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				c, err := net.Dial("tcp", addr)
				if err != nil {
					continue
				}
				f.add(c)
				_, _ = c.Read(make([]byte, 1)) // until the relay closes it, or f does
				c.Close()
			}
		})
	}
	return &wg
}

// stockHosts connects n plain libp2p hosts to r, which then stay.
func stockHosts(t testing.TB, r *node.Node, n int) []host.Host {
	ai, err := peer.AddrInfoFromP2pAddr(nt.TCPAddr(t, r))
	if err != nil {
		t.Fatal(err)
	}
	hs := make([]host.Host, n)
	var wg sync.WaitGroup
	for i := range hs {
		h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.DisableRelay())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		hs[i] = h
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := h.Connect(ctx, *ai); err != nil {
				t.Errorf("stock host connect: %v", err)
			}
		})
	}
	wg.Wait()
	return hs
}

// A new member reserves within seconds while the relay is flooded by every
// attack that locked members out before: idle TCP sockets, silent
// WebSocket upgrades, slow-loris HTTP upgrades, and stock libp2p hosts
// that connect and stay. (Before the Gate, 400 silent sockets alone kept a
// member out for 15 s.) The bound is loose for a loaded 2-core machine;
// the time is logged.
func TestNewMemberJoinsDuringFlood(t *testing.T) {
	r := nt.Relay(t, nt.WithoutDHT())
	tcp, ws := hostPort(t, nt.TCPAddr(t, r)), hostPort(t, nt.WSAddr(t, r))
	stop := make(chan struct{})
	f := &flood{}
	var churners *sync.WaitGroup
	defer func() {
		close(stop)
		f.Close()
		churners.Wait()
	}()
	stock := stockHosts(t, r, 100)
	idleTCP(t, f, tcp, 200)
	silentWS(t, f, ws, 200)
	slowLoris(t, f, ws, 100, stop)
	churners = churn(f, ws, 20, stop)
	t.Logf("flood: %d sockets opened, %d stock hosts; relay holds %d peers", f.Len(), len(stock), len(r.Host().Network().Peers()))
	for _, try := range []string{"first", "second"} {
		start := time.Now()
		p := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r)}, nt.WithoutDHT())
		nt.Eventually(t, 5*time.Second, "new member reserved during the flood", func() bool { return nt.Reserved(p, 1) })
		t.Logf("%s new member reserved after %s", try, time.Since(start))
	}
	ref := r.Status().Service.Refusals
	t.Logf("refusals: %v", ref)
	if ref["pending-per-ip"] == 0 {
		t.Errorf("no pending-per-ip refusal counted: %v", ref)
	}
}

// Stock hosts that connect to a members relay and stay are disconnected
// after the stranger grace; members stay.
func TestStrangersDisconnected(t *testing.T) {
	r := nt.Relay(t, nt.WithoutDHT(), nt.WithRelayConfig(func(c *relay.Config) { c.StrangerGrace = 500 * time.Millisecond }))
	m := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r)}, nt.WithoutDHT())
	nt.Eventually(t, 10*time.Second, "member reserved", func() bool { return nt.Reserved(m, 1) })
	stock := stockHosts(t, r, 20)
	nt.Eventually(t, 20*time.Second, "stock hosts disconnected", func() bool {
		for _, h := range stock {
			if len(h.Network().ConnsToPeer(r.ID())) > 0 {
				return false
			}
		}
		return true
	})
	if !nt.Reserved(m, 1) || r.Host().Network().Connectedness(m.ID()) != network.Connected {
		t.Fatal("the member lost its connection or reservation")
	}
	if n := r.Status().Service.Refusals["stranger-grace"]; n != int64(len(stock)) {
		t.Errorf("stranger-grace refusals = %d, want %d", n, len(stock))
	}
}

// Past the number of strangers that may wait out their grace at once, new
// ones are cut at once: peers that connect faster than the grace lets them
// go cannot take the inbound slots kept beyond members'.
func TestStrangersOverBudgetCutAtOnce(t *testing.T) {
	node.SetMaxHeldStrangers(t, 5)
	r := nt.Relay(t, nt.WithoutDHT(), nt.WithRelayConfig(func(c *relay.Config) { c.StrangerGrace = time.Hour }))
	stock := stockHosts(t, r, 15)
	connected := func() int {
		k := 0
		for _, h := range stock {
			if len(h.Network().ConnsToPeer(r.ID())) > 0 {
				k++
			}
		}
		return k
	}
	nt.Eventually(t, 20*time.Second, "all but 5 strangers cut", func() bool { return connected() == 5 })
	if n := r.Status().Service.Refusals["stranger-grace"]; n != 10 {
		t.Errorf("stranger-grace refusals = %d, want 10", n)
	}
}
