package relay

import (
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/transport"
	manet "github.com/multiformats/go-multiaddr/net"
)

// GateListenerForTest puts g in front of a plain listener, as the gated
// upgrader does, with no-op resource scopes.
func GateListenerForTest(g *Gate, l manet.Listener) transport.GatedMaListener {
	return gatedListener{nullGated{l}, g}
}

type nullGated struct{ manet.Listener }

func (l nullGated) Accept() (manet.Conn, network.ConnManagementScope, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, nil, err
	}
	return c, &network.NullScope{}, nil
}

// TalkedForTest reports whether the oldest pending connection has talked.
func TalkedForTest(g *Gate) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.all.Len() == 0 {
		return false
	}
	return g.all.Front().Value.(*pending).talked.Load()
}

// AllTalkedForTest reports whether every pending connection has talked.
func AllTalkedForTest(g *Gate) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for e := g.all.Front(); e != nil; e = e.Next() {
		if !e.Value.(*pending).talked.Load() {
			return false
		}
	}
	return g.all.Len() > 0
}
