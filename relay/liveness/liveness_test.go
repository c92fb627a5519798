package liveness_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"

	"github.com/overlay-net/overlay/relay/liveness"
)

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func connect(t *testing.T, a, b host.Host) network.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	cs := a.Network().ConnsToPeer(b.ID())
	if len(cs) != 1 {
		t.Fatalf("%d connections, want 1", len(cs))
	}
	return cs[0]
}

func TestPingOnConnection(t *testing.T) {
	a, b := newHost(t), newHost(t)
	c := connect(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rtt, err := liveness.Ping(ctx, c)
	if err != nil {
		t.Fatalf("ping: %v", err)
	}
	if rtt <= 0 {
		t.Fatalf("rtt %s", rtt)
	}
}

// A connection whose peer no longer answers pings is closed after Misses
// failed pings; one that answers is left alone.
func TestWatchClosesSilentConnection(t *testing.T) {
	a, b, live := newHost(t), newHost(t), newHost(t)
	c := connect(t, a, b)
	cl := connect(t, a, live)
	b.RemoveStreamHandler(ping.ID) // b's side stops answering, as a stalled path would
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	cfg := liveness.Config{Interval: 100 * time.Millisecond, Timeout: 5 * time.Second, Misses: 2}
	for _, p := range []peer.ID{b.ID(), live.ID()} {
		go func() {
			liveness.Watch(ctx, a, p, cfg, nil)
			done <- struct{}{}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for !c.IsClosed() {
		if time.Now().After(deadline) {
			t.Fatal("the silent connection was not closed within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if cl.IsClosed() {
		t.Fatal("the live connection was closed")
	}
	cancel()
	<-done
	<-done
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []liveness.Config{{Interval: -1}, {Interval: time.Second}, {Interval: time.Second, Timeout: time.Second}} {
		if c.Validate() == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
	for _, c := range []liveness.Config{{}, liveness.DefaultConfig()} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
