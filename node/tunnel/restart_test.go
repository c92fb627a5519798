package tunnel_test

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	nt "github.com/overlay-net/overlay/node/nodetest"
)

// The relay restarts while a tunnel through it carries a stream of bytes:
// the open connection fails (reset, not a clean end that could pass for
// complete data), nothing is left behind at the serving node, and new
// connections work once both peers hold a reservation again.
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
	// An endless stream of bytes, and an echo for the connections after.
	stream := serve(t, func(c net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	svc := serve(t, echo)
	expose(t, b, "stream", stream.addr())
	expose(t, b, "echo", svc.addr())
	streamAddr := forward(t, a, b, "stream")
	echoAddr := forward(t, a, b, "echo")

	c := dial(t, streamAddr)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1<<20)); err != nil {
		t.Fatalf("before the restart: %v", err)
	}
	r.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if err == nil || isTimeout(err) {
		t.Fatalf("the open connection after the relay went: %v, want it reset", err)
	}
	t.Logf("open connection: %v", err)
	nt.Eventually(t, 10*time.Second, "serving side let go of the tunnel", func() bool {
		return b.Tunnels().Live() == 0 && stream.open() == 0
	})

	r2 := nt.Relay(t, nt.WithKey(key), nt.WithListen(addr))
	defer r2.Close()
	nt.Eventually(t, 30*time.Second, "both reserved again", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
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
	if f := a.Tunnels().Forwards(); len(f) != 2 {
		t.Fatalf("forwards after the restart: %+v", f)
	}
}
