package node

import (
	"net"
	"testing"

	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
)

// addrConn is a net.Conn that reports the given remote address, as a
// secured connection reports its transport's.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

func TestMuxerCutsFramesOnCircuitsOnly(t *testing.T) {
	m := newMuxer()
	circuit := addrConn{remote: &client.NetAddr{Relay: "r", Remote: "p"}}
	tcp := addrConn{remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4001}}
	if got := m.forConn(circuit).MaxMessageSize; got != relayedFrameSize {
		t.Errorf("circuit: frames of %d bytes, want %d", got, relayedFrameSize)
	}
	if got, want := m.forConn(tcp).MaxMessageSize, yamux.DefaultTransport.MaxMessageSize; got != want {
		t.Errorf("direct: frames of %d bytes, want libp2p's %d", got, want)
	}
	// An end-to-end record (frame + 22 bytes of TLS) in the relay's yamux
	// frame (+12) must fit one TLS record of 16384 bytes.
	if relayedFrameSize+22+12 > 16384 {
		t.Errorf("a relayed record would not fit one hop record")
	}
	if yamux.DefaultTransport.MaxMessageSize == relayedFrameSize {
		t.Errorf("newMuxer changed libp2p's default transport")
	}
}
