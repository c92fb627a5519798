package tunnel_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/node/tunnel"
	"github.com/overlay-net/overlay/protocol"
)

// Replacing a service with a narrower allow list cuts the open tunnels of
// members it no longer admits, and refuses their new ones.
func TestNarrowAllowCutsOpenTunnels(t *testing.T) {
	t.Parallel()
	_, a, b := relayedPair(t)
	svc := serve(t, echo)
	expose(t, b, "echo", svc.addr())
	addr := forward(t, a, b, "echo")
	c := dial(t, addr)
	if err := roundTrip(c, "before"); err != nil {
		t.Fatal(err)
	}
	replaced, err := b.Tunnels().Expose(tunnel.Exposure{Name: "echo", Target: svc.addr(), Allow: []peer.ID{b.ID()}}, true)
	if err != nil || !replaced {
		t.Fatalf("narrow: %v, %v", replaced, err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("open tunnel of a no longer allowed member: read %v, want it cut", err)
	}
	if err := roundTrip(dial(t, addr), "after"); err == nil {
		t.Fatal("a no longer allowed member opened a new tunnel")
	}
}

// With exposure targets restricted, a host name resolving outside them is
// refused when the serving node connects.
func TestExposeTargetsCheckedAtConnect(t *testing.T) {
	t.Parallel()
	tg, err := tunnel.ParseTargets("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	_, a, b := relayedPair(t, func(c *node.Config) { c.ExposeTargets = tg })
	svc := serve(t, echo)
	_, port, _ := net.SplitHostPort(svc.addr())
	expose(t, b, "local", net.JoinHostPort("localhost", port))
	ctx := nt.Context(t, 30*time.Second)
	_, err = a.Tunnels().Dial(ctx, b.ID(), "local")
	var r *tunnel.Refused
	if !errors.As(err, &r) || r.Code != protocol.TunnelServiceDown || !strings.Contains(r.Reason, "outside") {
		t.Fatalf("dial: %v, want service down: outside the allowed targets", err)
	}
}
