package path

import (
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func addrs(ss ...string) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, s := range ss {
		out = append(out, ma.StringCast(s))
	}
	return out
}

func strsOf(as []ma.Multiaddr) []string {
	out := strs(as)
	slices.Sort(out)
	return out
}

// What a relay sees over a WebSocket connection from an ephemeral port
// gives the NAT's IP; the ports are the node's listen ports (a NAT that
// keeps ports). Over a connection from a listen port itself (QUIC), the
// observed port is the mapping. Strangers, private IPs and circuit
// addresses give nothing.
func TestObservedAddrs(t *testing.T) {
	relay, member, stranger := peer.ID("relay"), peer.ID("member"), peer.ID("stranger")
	o := newObserved(func(p peer.ID) bool { return p == relay || p == member })
	listen := addrs("/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4002/quic-v1", "/ip4/0.0.0.0/tcp/4003/ws", "/p2p-circuit")

	ws := &fakeConn{local: ma.StringCast("/ip4/10.0.0.2/tcp/51000/ws")}
	if !o.note(relay, ws, ma.StringCast("/ip4/7.7.1.1/tcp/61000/ws")) {
		t.Fatal("a relay's public observation was not taken")
	}
	want := []string{"/ip4/7.7.1.1/tcp/4001", "/ip4/7.7.1.1/udp/4002/quic-v1"}
	if got := strsOf(o.addrs(listen)); !slices.Equal(got, want) {
		t.Fatalf("from a WebSocket observation: %v, want %v", got, want)
	}

	quic := &fakeConn{local: ma.StringCast("/ip4/0.0.0.0/udp/4002/quic-v1")}
	o.note(member, quic, ma.StringCast("/ip4/7.7.1.1/udp/39000/quic-v1"))
	want = []string{"/ip4/7.7.1.1/tcp/4001", "/ip4/7.7.1.1/udp/39000/quic-v1", "/ip4/7.7.1.1/udp/4002/quic-v1"}
	if got := strsOf(o.addrs(listen)); !slices.Equal(got, want) {
		t.Fatalf("with a QUIC observation: %v, want %v", got, want)
	}
	o.drop(quic)

	for _, bad := range []struct {
		p    peer.ID
		addr string
	}{
		{stranger, "/ip4/6.6.6.6/tcp/1/ws"},
		{relay, "/ip4/192.168.1.5/tcp/1"},
		{relay, "/ip4/7.7.0.1/tcp/4101/ws/p2p/12D3KooWPGFf48r1QsVk7rEsy5fwdszaWQFz76fvokvktRwCJhcR/p2p-circuit"},
	} {
		o.note(bad.p, &fakeConn{local: ma.StringCast("/ip4/10.0.0.2/tcp/1")}, ma.StringCast(bad.addr))
	}
	want = []string{"/ip4/7.7.1.1/tcp/4001", "/ip4/7.7.1.1/udp/4002/quic-v1"}
	if got := strsOf(o.addrs(listen)); !slices.Equal(got, want) {
		t.Fatalf("after untrusted and unusable observations: %v, want %v", got, want)
	}
}

// fakeConn stands in for a connection where only its local address is
// read; any other method panics.
type fakeConn struct {
	network.Conn
	local ma.Multiaddr
}

func (c *fakeConn) LocalMultiaddr() ma.Multiaddr { return c.local }
