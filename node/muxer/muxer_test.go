package muxer

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
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

// recordingMuxer notes the frame size the muxer chose for each connection.
type recordingMuxer struct {
	*muxer
	mu    sync.Mutex
	sizes map[string]uint32 // by the remote address's network
}

func (r *recordingMuxer) NewConn(nc net.Conn, isServer bool, scope network.PeerScope) (network.MuxedConn, error) {
	r.mu.Lock()
	r.sizes[nc.RemoteAddr().Network()] = r.forConn(nc).MaxMessageSize
	r.mu.Unlock()
	return r.muxer.NewConn(nc, isServer, scope)
}

func (r *recordingMuxer) size(network string) (uint32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sizes[network]
	return s, ok
}

// Through real libp2p hosts and a real circuit, the muxer sees the circuit
// under the secured connection and cuts frames there only.
func TestMuxerSeesRealCircuits(t *testing.T) {
	stock, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.EnableRelayService(), libp2p.ForceReachabilityPublic())
	if err != nil {
		t.Fatal(err)
	}
	defer stock.Close()
	rinfo := peer.AddrInfo{ID: stock.ID(), Addrs: stock.Addrs()}
	newPeer := func() (host.Host, *recordingMuxer) {
		rec := &recordingMuxer{muxer: newMuxer(), sizes: map[string]uint32{}}
		h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.EnableRelay(), libp2p.Muxer(yamux.ID, rec))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h, rec
	}
	a, recA := newPeer()
	b, recB := newPeer()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := b.Connect(ctx, rinfo); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, b, rinfo); err != nil {
		t.Fatal(err)
	}
	circuit, err := ma.NewMultiaddr(stock.Addrs()[0].String() + "/p2p/" + stock.ID().String() + "/p2p-circuit")
	if err != nil {
		t.Fatal(err)
	}
	cctx := network.WithAllowLimitedConn(ctx, "test")
	if err := a.Connect(cctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
		t.Fatal(err)
	}
	for name, rec := range map[string]*recordingMuxer{"dialer": recA, "listener": recB} {
		if got, ok := rec.size("tcp"); !ok || got == relayedFrameSize {
			t.Errorf("%s: hop to the relay has frames of %d bytes (seen %v), want libp2p's", name, got, ok)
		}
		if got, ok := rec.size((&client.NetAddr{}).Network()); !ok || got != relayedFrameSize {
			t.Errorf("%s: circuit has frames of %d bytes (seen %v), want %d", name, got, ok, relayedFrameSize)
		}
	}
}
