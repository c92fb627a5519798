package tunnel_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/node/tunnel"
	"github.com/overlay-net/overlay/protocol"
)

// curl fetches a page from an HTTP server exposed by one WebSocket-only
// peer through a forward on another: every byte goes through the relay.
func TestCurlThroughRelayedForward(t *testing.T) {
	t.Parallel()
	_, a, b := relayedPair(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s, you asked for %s\n", b.ID(), r.URL.Path)
	}))
	t.Cleanup(web.Close)
	expose(t, b, "web", web.Listener.Addr().String())
	addr := forward(t, a, b, "web")
	want := fmt.Sprintf("hello from %s, you asked for /through/the/relay\n", b.ID())

	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (apt-get install -y curl)")
	}
	ctx := nt.Context(t, 30*time.Second)
	out, err := exec.CommandContext(ctx, curl, "-sS", "--max-time", "20", "http://"+addr+"/through/the/relay").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v: %s", err, out)
	}
	if string(out) != want {
		t.Fatalf("curl got %q, want %q", out, want)
	}
	if conns := a.Host().Network().ConnsToPeer(b.ID()); len(conns) == 0 || !conns[0].Stat().Limited && !strings.Contains(conns[0].RemoteMultiaddr().String(), "p2p-circuit") {
		t.Fatalf("a reaches b over %v, want a relayed connection", conns)
	}
	// Go's client keeps connections alive, so this also runs several
	// requests over one tunnel.
	for i := range 3 {
		resp, err := http.Get(fmt.Sprintf("http://%s/again/%d", addr, i))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasSuffix(string(body), fmt.Sprintf("/again/%d\n", i)) {
			t.Fatalf("got %q", body)
		}
	}
}

// Each side's end of data reaches the other as a half-close, and the other
// direction goes on after it.
func TestHalfCloseBothWays(t *testing.T) {
	t.Parallel()
	_, a, b := relayedPair(t)
	// The service reads until the client's half-close, then answers with
	// what it read, reversed, and half-closes in turn.
	svc := serve(t, func(c net.Conn) {
		got, err := io.ReadAll(c)
		if err != nil {
			return
		}
		for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
			got[i], got[j] = got[j], got[i]
		}
		c.Write(got)
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	})
	expose(t, b, "rev", svc.addr())
	c := dial(t, forward(t, a, b, "rev"))
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte("stressed")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "desserts" {
		t.Fatalf("read %q, %v; want \"desserts\" then EOF", got, err)
	}
	c.Close()
	nt.Eventually(t, 10*time.Second, "tunnel gone on both sides", func() bool { return quiet(a, b) })
}

// Many connections at once through one forward, each its own stream.
func TestConcurrentConnections(t *testing.T) {
	t.Parallel()
	const conns = 200
	_, a, b := relayedPair(t)
	svc := serve(t, echo)
	expose(t, b, "echo", svc.addr())
	addr := forward(t, a, b, "echo")
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	release := make(chan struct{})
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			// The first round trip waits for the tunnel's setup, queued
			// behind the others': under -race beside this package's bulk
			// transfers 200 setups took over 20 s.
			c.SetDeadline(time.Now().Add(60 * time.Second))
			if err := roundTripNoDeadline(c, fmt.Sprintf("first %d", i)); err != nil {
				errs <- fmt.Errorf("conn %d: %w", i, err)
				return
			}
			<-release
			if err := roundTrip(c, fmt.Sprintf("second %d", i)); err != nil {
				errs <- fmt.Errorf("conn %d after all were open: %w", i, err)
			}
		}()
	}
	nt.Eventually(t, 60*time.Second, fmt.Sprintf("%d connections open at the service", conns), func() bool {
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		return svc.open() == conns
	})
	if n := tunnelStreams(a); n != conns {
		t.Errorf("%d tunnel streams at the forwarding node, want %d", n, conns)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	nt.Eventually(t, 10*time.Second, "every tunnel closed", func() bool { return quiet(a, b) && svc.open() == 0 })
	if f := a.Tunnels().Forwards()[0]; f.Total != conns || f.Failed != 0 {
		t.Errorf("forward counted %d tunnels, %d failed; want %d, 0", f.Total, f.Failed, conns)
	}
}

// A service that is not listening is refused as "service down", which the
// forwarding side logs and turns into a reset connection; once it listens,
// tunnels work.
func TestServiceDownThenUp(t *testing.T) {
	t.Parallel()
	logs := &nt.LogRecorder{Level: slog.LevelWarn}
	r := nt.Relay(t)
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a := nt.Peer(t, relays, nt.WithLogger(logs.Logger()))
	b := nt.Peer(t, relays)
	nt.Eventually(t, 10*time.Second, "both reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
	port := nt.FreePort(t)
	target := fmt.Sprintf("127.0.0.1:%d", port)
	expose(t, b, "later", target)
	addr := forward(t, a, b, "later")

	c := dial(t, addr)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read from a tunnel to a service that is down: %d bytes, %v; want the connection closed", n, err)
	}
	f := a.Tunnels().Forwards()[0]
	if f.Failed != 1 || !strings.Contains(f.LastError, "connection refused") {
		t.Fatalf("forward: %+v, want one failure, connection refused", f)
	}
	if !logged(logs, "reason=service down") {
		t.Fatalf("no log line naming the reason; logged: %q", logs.Records())
	}
	_, err := a.Tunnels().Dial(nt.Context(t, 20*time.Second), b.ID(), "later")
	if !errors.Is(err, tunnel.ErrServiceDown) {
		t.Fatalf("Dial: %v, want ErrServiceDown", err)
	}

	ln, err := net.Listen("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, ln, echo)
	if err := roundTrip(dial(t, addr), "up again"); err != nil {
		t.Fatal(err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func logged(r *nt.LogRecorder, s string) bool {
	for _, l := range r.Records() {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// Unknown services, members outside a service's allow list and nodes of
// another network are refused, each with its reason; none reaches the
// service.
func TestRefusals(t *testing.T) {
	t.Parallel()
	r := nt.Relay(t)
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a := nt.Peer(t, relays)
	b := nt.Peer(t, relays, nt.WithDirect(0))
	c := nt.Peer(t, relays)
	nt.Eventually(t, 10*time.Second, "all reserved", func() bool {
		return nt.Reserved(a, 1) && nt.Reserved(b, 1) && nt.Reserved(c, 1)
	})
	svc := serve(t, echo)
	expose(t, b, "only-c", svc.addr(), c)
	ctx := nt.Context(t, 60*time.Second)

	if _, err := a.Tunnels().Dial(ctx, b.ID(), "nothing-here"); !errors.Is(err, tunnel.ErrUnknownService) {
		t.Errorf("unknown service: %v, want ErrUnknownService", err)
	}
	if _, err := a.Tunnels().Dial(ctx, b.ID(), "only-c"); !errors.Is(err, tunnel.ErrNotAllowed) {
		t.Errorf("member outside the allow list: %v, want ErrNotAllowed", err)
	}
	st, err := c.Tunnels().Dial(ctx, b.ID(), "only-c")
	if err != nil {
		t.Fatalf("allowed member: %v", err)
	}
	st.Reset()

	// A node of another network reaches b directly: the handshake refuses
	// it, and so does the tunnel service if it asks anyway.
	stranger := nt.Relay(t, nt.WithNetwork("other"))
	if _, err := stranger.Connect(ctx, nt.TCPAddr(t, b).String()); err == nil {
		t.Fatal("a node of another network passed the handshake")
	}
	if _, err := stranger.Tunnels().Dial(ctx, b.ID(), "only-c"); err == nil {
		t.Fatal("a node of another network opened a tunnel")
	}
	if err := stranger.Host().Connect(ctx, peerInfo(t, b)); err == nil {
		a, err := rawRequest(ctx, stranger, b, "only-c")
		if err == nil && (a.OK || a.Code != protocol.TunnelNotMember) {
			t.Fatalf("stranger's raw request answered %+v, want refused as not a member", a)
		}
		t.Logf("stranger's raw request: %+v, %v", a, err)
	}
	nt.Eventually(t, 10*time.Second, "the allowed member's tunnel closed", func() bool { return svc.open() == 0 })
	if n := b.Tunnels().Live(); n != 0 {
		t.Errorf("%d tunnels live at the serving node", n)
	}
}

// Garbage instead of a request resets that stream only.
func TestMalformedRequestResetsOneStream(t *testing.T) {
	t.Parallel()
	_, a, b := relayedPair(t)
	svc := serve(t, echo)
	expose(t, b, "echo", svc.addr())
	keep := dial(t, forward(t, a, b, "echo"))
	if err := roundTrip(keep, "before"); err != nil {
		t.Fatal(err)
	}
	for name, garbage := range map[string][]byte{
		"oversized":   {0x20, 0x7f, 0, 0, 0},
		"bad name":    {0x20, 0, 0, 0, 3, 'a', '/', 'b'},
		"wrong frame": {0x21, 0, 0, 0, 0},
	} {
		ctx := nt.Context(t, 20*time.Second)
		s, err := a.Host().NewStream(withLimited(ctx), b.ID(), protocol.TunnelID)
		if err != nil {
			t.Fatal(err)
		}
		s.Write(garbage)
		s.SetReadDeadline(time.Now().Add(15 * time.Second))
		if _, err := s.Read(make([]byte, 16)); err == nil || isTimeout(err) {
			t.Errorf("%s: stream not reset: %v", name, err)
		}
		s.Reset()
	}
	if err := roundTrip(keep, "after"); err != nil {
		t.Fatalf("the other tunnel broke: %v", err)
	}
}

// Either end going away ends the tunnel at both nodes, and nothing stays
// behind: no tunnel, no stream, no goroutine.
func TestNothingLeftWhenEitherSideGoesAway(t *testing.T) {
	_, a, b := relayedPair(t)
	svc := serve(t, echo)
	expose(t, b, "echo", svc.addr())
	addr := forward(t, a, b, "echo")
	open := func(k int) []*net.TCPConn {
		var cs []*net.TCPConn
		for i := range k {
			c := dial(t, addr)
			if err := roundTrip(c, fmt.Sprint("conn ", i)); err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
		}
		return cs
	}
	settled := func(what string) {
		nt.Eventually(t, 15*time.Second, what, func() bool { return quiet(a, b) && svc.open() == 0 })
	}
	open(1)[0].Close()
	settled("the first tunnel closed")
	before := runtime.NumGoroutine()

	for _, c := range open(50) {
		c.Close()
	}
	settled("tunnels closed after the clients went away")

	cs := open(50)
	svc.dropAll()
	for _, c := range cs {
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("client read after the service closed: %v, want EOF", err)
		}
		c.Close()
	}
	settled("tunnels closed after the service went away")
	nt.Eventually(t, 15*time.Second, fmt.Sprintf("goroutines back to %d", before), func() bool {
		return runtime.NumGoroutine() <= before+2
	})

	cs = open(20)
	a.Close()
	for _, c := range cs {
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("client read after its node closed: %v, want the connection closed", err)
		}
	}
	nt.Eventually(t, 15*time.Second, "serving side quiet after the forwarding node closed", func() bool {
		return quiet(b) && svc.open() == 0
	})
}

// Services exposed at run time are kept in the data directory; those of
// the configuration come back at every start.
func TestExposedServicesSurviveRestart(t *testing.T) {
	t.Parallel()
	r := nt.Relay(t)
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	key, dir := nt.Key(t), t.TempDir()
	fromConfig := func(c *node.Config) {
		c.Expose = []tunnel.Exposure{{Name: "cfg", Target: "127.0.0.1:1"}}
	}
	b := nt.Peer(t, relays, nt.WithKey(key), nt.WithDataDir(dir), fromConfig)
	svc := serve(t, echo)
	expose(t, b, "echo", svc.addr())
	if _, err := b.Tunnels().Expose(tunnel.Exposure{Name: "gone", Target: "127.0.0.1:2"}, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Tunnels().Unexpose("gone"); err != nil {
		t.Fatal(err)
	}
	b.Close()

	b = nt.Peer(t, relays, nt.WithKey(key), nt.WithDataDir(dir), fromConfig)
	var names []string
	for _, e := range b.Tunnels().Exposures() {
		names = append(names, e.Name+"/"+e.Source)
	}
	if got := strings.Join(names, " "); got != "cfg/config echo/runtime" {
		t.Fatalf("exposed after restart: %s", got)
	}
	a := nt.Peer(t, relays)
	nt.Eventually(t, 10*time.Second, "both reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
	if err := roundTrip(dial(t, forward(t, a, b, "echo")), "still here"); err != nil {
		t.Fatal(err)
	}
}

func TestParseExposureAndLocalAddr(t *testing.T) {
	e, err := tunnel.ParseExposure("ssh=127.0.0.1:22")
	if err != nil || e.Name != "ssh" || e.Target != "127.0.0.1:22" {
		t.Fatalf("ParseExposure = %+v, %v", e, err)
	}
	for _, bad := range []string{"ssh", "ssh=22", "s s=127.0.0.1:22", "=127.0.0.1:22", "ssh=:22"} {
		if _, err := tunnel.ParseExposure(bad); err == nil {
			t.Errorf("ParseExposure(%q) accepted", bad)
		}
	}
	for in, want := range map[string]string{"2222": "127.0.0.1:2222", ":2222": "127.0.0.1:2222",
		"0.0.0.0:80": "0.0.0.0:80", "[::1]:9": "[::1]:9"} {
		if got := tunnel.LocalAddr(in); got != want {
			t.Errorf("LocalAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func withLimited(ctx context.Context) context.Context {
	return network.WithAllowLimitedConn(ctx, "test")
}

func peerInfo(t testing.TB, n *node.Node) peer.AddrInfo {
	ai, err := peer.AddrInfoFromP2pAddr(nt.TCPAddr(t, n))
	if err != nil {
		t.Fatal(err)
	}
	return *ai
}
