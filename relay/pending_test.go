package relay_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/overlay-net/overlay/internal/wstransport"
	"github.com/overlay-net/overlay/relay"
)

// gated listens on 127.0.0.1 behind g and accepts every connection in the
// background, as the upgrader would; it returns the listener's address.
func gated(t *testing.T, g *relay.Gate) string {
	// An upgrader that never hears from the peer: it ends the scope once
	// the connection is closed under it.
	return gatedServing(t, g, func(c manet.Conn) { _, _ = io.Copy(io.Discard, c) })
}

// gatedServing is gated with serve run on each accepted connection, which
// is closed and its scope ended when serve returns.
func gatedServing(t *testing.T, g *relay.Gate, serve func(manet.Conn)) string {
	t.Helper()
	ml, err := manet.Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	l := relay.GateListenerForTest(g, ml)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, scope, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				serve(c)
				c.Close()
				scope.Done()
			}()
		}
	}()
	return ml.Addr().String()
}

func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closed reports whether the server closed c, within d.
func closed(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// waitFor polls cond until it holds, failing t with what after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitPending(t *testing.T, g *relay.Gate, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("pending never reached %d", n), func() bool { return g.Pending() == n })
}

// One IP over its bound loses its oldest pending connection, not the
// newest; other IPs keep theirs.
func TestGateEvictsOldestOfIP(t *testing.T) {
	ref := relay.NewRefusals(nil)
	g := relay.NewGate(10, 2, time.Minute, ref)
	addr := gated(t, g)
	other := dialFrom(t, "127.0.0.2", addr)
	first := dialFrom(t, "127.0.0.1", addr)
	waitPending(t, g, 2)
	dialFrom(t, "127.0.0.1", addr)
	waitPending(t, g, 3)
	newest := dialFrom(t, "127.0.0.1", addr)
	if !closed(first, 2*time.Second) {
		t.Fatal("oldest connection of 127.0.0.1 still open")
	}
	if closed(newest, 100*time.Millisecond) || closed(other, 100*time.Millisecond) {
		t.Fatal("the newest connection, or another IP's, was closed")
	}
	if got := ref.Counts()["pending-per-ip"]; got != 1 {
		t.Fatalf("pending-per-ip refusals = %d, want 1", got)
	}
}

// A connection whose peer talks outlives silent ones that keep arriving,
// however many: a flood that re-opens its idle sockets evicts only its own.
func TestGateSparesTalkingConnection(t *testing.T) {
	ref := relay.NewRefusals(nil)
	g := relay.NewGate(10, 2, time.Minute, ref)
	addr := gated(t, g)
	talker := dialFrom(t, "127.0.0.1", addr)
	waitPending(t, g, 1)
	if _, err := talker.Write([]byte("/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the gate never saw the talker's byte", func() bool { return relay.TalkedForTest(g) })
	var silent []net.Conn
	for range 5 {
		silent = append(silent, dialFrom(t, "127.0.0.1", addr))
	}
	for _, c := range silent[:4] {
		if !closed(c, 2*time.Second) {
			t.Fatal("an older silent connection was kept")
		}
	}
	if closed(talker, 100*time.Millisecond) {
		t.Fatal("the talking connection was evicted before silent ones")
	}
}

// Over the total bound, the oldest pending connection of all goes.
func TestGateEvictsOldestOfAll(t *testing.T) {
	ref := relay.NewRefusals(nil)
	g := relay.NewGate(2, 2, time.Minute, ref)
	addr := gated(t, g)
	first := dialFrom(t, "127.0.0.2", addr)
	waitPending(t, g, 1)
	dialFrom(t, "127.0.0.3", addr)
	waitPending(t, g, 2)
	dialFrom(t, "127.0.0.4", addr)
	if !closed(first, 2*time.Second) {
		t.Fatal("oldest connection still open")
	}
	if got := ref.Counts()["pending-total"]; got != 1 {
		t.Fatalf("pending-total refusals = %d, want 1", got)
	}
}

// A connection that stays silent is closed after the timeout.
func TestGateTimesOutSilentConnection(t *testing.T) {
	ref := relay.NewRefusals(nil)
	g := relay.NewGate(10, 10, 200*time.Millisecond, ref)
	addr := gated(t, g)
	c := dialFrom(t, "127.0.0.1", addr)
	if !closed(c, 3*time.Second) {
		t.Fatal("silent connection still open after the timeout")
	}
	waitPending(t, g, 0)
	if got := ref.Counts()["pending-timeout"]; got != 1 {
		t.Fatalf("pending-timeout refusals = %d, want 1", got)
	}
}

// A bound full of talkers younger than a second refuses the newcomer
// instead of cutting a handshake under way (a burst of honest peers must
// not cut each other forever); once the oldest talker is past that, a
// newcomer makes room by closing it (slow-loris).
func TestGateProtectsYoungTalkers(t *testing.T) {
	g := relay.NewGate(10, 2, time.Minute, relay.NewRefusals(nil))
	addr := gated(t, g)
	talkers := []net.Conn{dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr)}
	waitPending(t, g, 2)
	for _, c := range talkers {
		if _, err := c.Write([]byte("/")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the gate never saw the talkers' bytes", func() bool { return relay.AllTalkedForTest(g) })
	start := time.Now()
	if newcomer := dialFrom(t, "127.0.0.1", addr); !closed(newcomer, 2*time.Second) {
		t.Fatal("the newcomer was kept over a full bound of young talkers")
	}
	if time.Since(start) < 900*time.Millisecond && closed(talkers[0], 50*time.Millisecond) {
		t.Fatal("a talker younger than a second was cut for a newcomer")
	}
	// Past the grace, newcomers push the oldest talker out.
	deadline := time.Now().Add(5 * time.Second)
	for !closed(talkers[0], 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the oldest talker was never cut for newcomers")
		}
		dialFrom(t, "127.0.0.1", addr)
		time.Sleep(100 * time.Millisecond)
	}
}

// gatedUpgrading is gated with connections served as our WebSocket
// transport does: it reads one line (the upgrade request), tells the
// connection it is upgraded, and then reads on, as the security handshake
// would. Each upgrade done is sent on the channel returned.
func gatedUpgrading(t *testing.T, g *relay.Gate) (string, <-chan struct{}) {
	upgraded := make(chan struct{}, 16)
	addr := gatedServing(t, g, func(c manet.Conn) {
		if _, err := bufio.NewReaderSize(c, 16).ReadString('\n'); err != nil {
			return
		}
		c.(wstransport.Upgradable).Upgraded()
		upgraded <- struct{}{}
		_, _ = io.Copy(io.Discard, c)
	})
	return addr, upgraded
}

// A WebSocket connection whose upgrade is followed by silence counts as
// silent: it goes before a younger talker, and the newcomer gets in.
// Counting it as talking would let upgrades alone keep newcomers out.
func TestGateUpgradeThenSilenceIsSilent(t *testing.T) {
	g := relay.NewGate(10, 2, time.Minute, relay.NewRefusals(nil))
	addr, upgrades := gatedUpgrading(t, g)
	talker := dialFrom(t, "127.0.0.1", addr)
	if _, err := talker.Write([]byte("GET / HTTP/1.1\n/multistream")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the gate never saw the talker's handshake", func() bool { return relay.TalkedForTest(g) })
	upgraded := dialFrom(t, "127.0.0.1", addr)
	if _, err := upgraded.Write([]byte("GET / HTTP/1.1\n")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-upgrades:
		case <-time.After(5 * time.Second):
			t.Fatal("the connections were never upgraded")
		}
	}
	newcomer := dialFrom(t, "127.0.0.1", addr)
	if !closed(upgraded, 2*time.Second) {
		t.Fatal("the upgraded, silent connection was kept")
	}
	if closed(talker, 100*time.Millisecond) || closed(newcomer, 100*time.Millisecond) {
		t.Fatal("the talker or the newcomer was closed instead")
	}
}

// The gate's connections pass their socket on, so that the WebSocket
// transport can wait for data without holding a read buffer.
func TestGatePassesTheSocketOn(t *testing.T) {
	got := make(chan error, 1)
	addr := gatedServing(t, relay.Limits{Pending: 10, PendingPerIP: 10}.Gate(nil), func(c manet.Conn) {
		sc, ok := c.(syscall.Conn)
		if !ok {
			got <- fmt.Errorf("%T is no syscall.Conn", c)
			return
		}
		_, err := sc.SyscallConn()
		got <- err
	})
	dialFrom(t, "127.0.0.1", addr)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the gate accepted nothing")
	}
}
