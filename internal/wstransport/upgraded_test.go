package wstransport

import (
	"sync/atomic"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/net/upgrader"
	manet "github.com/multiformats/go-multiaddr/net"
)

// spyUpgrader hands the listener connections that count their Upgraded
// calls, as relay.Gate's do.
type spyUpgrader struct {
	transport.Upgrader
	calls atomic.Int32
}

func (u *spyUpgrader) GateMaListener(l manet.Listener) transport.GatedMaListener {
	return spyListener{u.Upgrader.GateMaListener(l), &u.calls}
}

type spyListener struct {
	transport.GatedMaListener
	calls *atomic.Int32
}

func (l spyListener) Accept() (manet.Conn, network.ConnManagementScope, error) {
	c, s, err := l.GatedMaListener.Accept()
	if err != nil {
		return c, s, err
	}
	return spyConn{c, l.calls}, s, nil
}

type spyConn struct {
	manet.Conn
	calls *atomic.Int32
}

func (c spyConn) Upgraded() { c.calls.Add(1) }

// The gate's connection hears once that its HTTP upgrade is done, before
// the upgraded connection is handed on.
func TestUpgradedCalledOnce(t *testing.T) {
	up, err := upgrader.New(nil, nil, nil, &network.NullResourceManager{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spy := &spyUpgrader{Upgrader: up}
	tr, err := New(spy, nil)
	if err != nil {
		t.Fatal(err)
	}
	dialAccept(t, tr, rawListen(t, tr))
	if n := spy.calls.Load(); n != 1 {
		t.Fatalf("Upgraded called %d times, want 1", n)
	}
}
