package tunnel_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	nt "github.com/overlay-net/overlay/node/nodetest"
)

// The relay restarts while a tunnel through it carries a stream of bytes:
// the tunnel's session waits for the path to come back (up to
// resume.DefaultGoneAfter), and once both peers hold a reservation on the
// new relay the open connection carries on where it stopped; new
// connections work too.
//
// Not parallel, like node's TestRelayRestartDuringMessages: under -race
// beside this package's bulk transfers the peers once took over 20 s to
// reserve on the new relay.
func TestRelayRestartMidTransfer(t *testing.T) {
	key := nt.Key(t)
	addr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/ws", nt.FreePort(t))
	r := nt.Relay(t, nt.WithKey(key), nt.WithListen(addr))
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a := nt.Peer(t, relays)
	b := nt.Peer(t, relays)
	nt.Eventually(t, 10*time.Second, "both reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
	svc := serve(t, echo)
	expose(t, b, "echo", svc.addr())
	echoAddr := forward(t, a, b, "echo")

	s := startStream(dial(t, echoAddr))
	s.awaitMore(t, 1<<20, "bytes before the restart")
	r.Close()
	r2 := nt.Relay(t, nt.WithKey(key), nt.WithListen(addr))
	defer r2.Close()
	nt.Eventually(t, 30*time.Second, "both reserved again", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
	s.awaitMore(t, 1<<20, "bytes of the open connection after the restart")
	s.finish(t)
	var last error
	nt.Eventually(t, 30*time.Second, "a new connection through the tunnel", func() bool {
		c, err := net.DialTimeout("tcp", echoAddr, 5*time.Second)
		if err != nil {
			last = err
			return false
		}
		defer c.Close()
		if last = roundTrip(c, "after the restart"); last != nil {
			t.Logf("not yet: %v", last)
		}
		return last == nil
	})
	if f := a.Tunnels().Forwards(); len(f) != 1 || f[0].Failed != 0 {
		t.Fatalf("forwards after the restart: %+v", f)
	}
}
