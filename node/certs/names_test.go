package certs_test

import (
	"errors"
	"testing"
	"time"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// TestNamesAsTargets: in certificate mode a member's name stands for its
// peer ID wherever a node takes a target (connect, ping, perf, send,
// forward resolve through Node.ResolvePeer); an unknown name and a name
// outside certificate mode are refused with a reason.
func TestNamesAsTargets(t *testing.T) {
	ca := newCA(t)
	nb, na := valid()
	sm := newMember(t, ca, "server", nb, na)
	lm := newMember(t, ca, "laptop", nb, na)
	server := nt.Relay(t, sm.opts(ca)...)
	laptop := nt.Relay(t, lm.opts(ca)...)
	ctx := nt.Context(t, 20*time.Second)
	if _, err := laptop.Connect(ctx, nt.TCPAddr(t, server).String()); err != nil {
		t.Fatal(err)
	}
	nt.Eventually(t, 10*time.Second, "laptop knows the server by name", func() bool {
		id, err := laptop.ResolvePeer("server")
		return err == nil && id == server.ID()
	})
	if id, err := laptop.ResolvePeer(server.ID().String()); err != nil || id != server.ID() {
		t.Errorf("a peer ID resolves to %s, %v", id, err)
	}
	if _, err := laptop.Connect(ctx, "server"); err != nil {
		t.Errorf("connect by name: %v", err)
	}
	if rtts, err := laptop.Ping(ctx, "server", 1, 0); err != nil || len(rtts) != 1 {
		t.Errorf("ping by name: %v, %v", rtts, err)
	}
	if _, err := laptop.Messages().Send(ctx, server.ID(), []byte("by id")); err != nil {
		t.Errorf("send: %v", err)
	}
	if _, err := laptop.ResolvePeer("nobody"); !errors.Is(err, node.ErrUnknownName) {
		t.Errorf("an unknown name: %v, want ErrUnknownName", err)
	}
	plain := nt.Relay(t)
	if _, err := plain.ResolvePeer("server"); err == nil {
		t.Error("a node outside certificate mode resolved a name")
	}
}
