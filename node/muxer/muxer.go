// Package muxer is the node's stream muxer: libp2p's yamux, with frames on
// relayed connections cut so that each end-to-end TLS record fits the
// relay's own TLS record whole.
package muxer

import (
	"net"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
)

// relayedFrameSize is the largest yamux frame (header included) on a
// relayed connection. The relay carries each end-to-end TLS record (frame +
// 22 bytes) in one yamux frame of its own (+12 bytes) inside one TLS record
// of at most 16384 bytes of plaintext. With libp2p's 64 KiB frames every
// full end-to-end record overflowed that by 34 bytes, so the relay wrote each
// one as two TLS records: two WebSocket messages, two system calls, on both
// hops (docs/datapath.md). Noise's overhead (18 bytes) fits too.
const relayedFrameSize = 16384 - 12 - 22

// muxer is libp2p's yamux with one difference: connections over a relay
// circuit cut their frames to relayedFrameSize. A node's other connections,
// its hops to relays among them, keep libp2p's 64 KiB frames so that a relay
// receives an end-to-end record in one piece. On the wire it is plain
// yamux: the frame size is the sender's choice.
type muxer struct {
	direct, relayed *yamux.Transport
}

func newMuxer() *muxer {
	relayed := *yamux.DefaultTransport
	relayed.MaxMessageSize = relayedFrameSize
	return &muxer{direct: yamux.DefaultTransport, relayed: &relayed}
}

func (m *muxer) NewConn(nc net.Conn, isServer bool, scope network.PeerScope) (network.MuxedConn, error) {
	return m.forConn(nc).NewConn(nc, isServer, scope)
}

// forConn picks the configuration by the connection's remote address: a
// secured connection reports its insecure one's, and a circuit's is the
// relay client's NetAddr.
func (m *muxer) forConn(nc net.Conn) *yamux.Transport {
	if _, ok := nc.RemoteAddr().(*client.NetAddr); ok {
		return m.relayed
	}
	return m.direct
}

// Option installs the muxer in a libp2p host in place of yamux.
func Option() libp2p.Option {
	return libp2p.Muxer(yamux.ID, newMuxer())
}
