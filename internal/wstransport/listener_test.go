package wstransport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/upgrader"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// rawPair is a transport whose upgrader only gates (no security): tests
// here drive the WebSocket layer itself.
func rawTransport(t *testing.T, cfg Config) *Transport {
	t.Helper()
	up, err := upgrader.New(nil, nil, nil, &network.NullResourceManager{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := New(up, nil, WithConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func rawListen(t *testing.T, tr *Transport) *wsListener {
	t.Helper()
	l, err := tr.listen(ma.StringCast("/ip4/127.0.0.1/tcp/0/ws"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func tcpAddr(l *wsListener) string { return l.Addr().String() }

// dialAccept dials l through tr and accepts the connection on l, both
// closed when the test ends.
func dialAccept(t *testing.T, tr *Transport, l *wsListener) (*Conn, manet.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := tr.dial(ctx, l.Multiaddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.Close() })
	ac, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ac.Close() })
	return dc, ac
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// closedWithin reports whether the server ends c (EOF or reset) within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.ReadAll(c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func TestRawDialAcceptCloseEOF(t *testing.T) {
	tr := rawTransport(t, Config{})
	l := rawListen(t, tr)
	c, s := dialAccept(t, tr, l)
	if got, want := s.LocalMultiaddr(), l.Multiaddr(); !got.Equal(want) {
		t.Fatalf("accepted local addr %s, want %s", got, want)
	}
	if got, want := c.RemoteMultiaddr(), l.Multiaddr(); !got.Equal(want) {
		t.Fatalf("dialed remote addr %s, want %s", got, want)
	}
	msg := strings.Repeat("x", 100000) // several frames at the 4 KiB read buffer
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(nil); err != nil { // an empty message is no EOF
		t.Fatal(err)
	}
	c.Close()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("read until close: %v (want clean EOF)", err)
	}
	if string(got) != msg {
		t.Fatalf("read %d bytes, want %d", len(got), len(msg))
	}
	if _, err := c.Write([]byte("late")); err == nil {
		t.Fatal("write after close succeeded")
	}
	// Reading on after the end must keep failing, never panic (gorilla
	// panics after 1000 reads on a failed connection).
	for i := 0; i < 2000; i++ {
		if _, err := s.Read(make([]byte, 1)); err == nil {
			t.Fatal("read after EOF succeeded")
		}
	}
}

func TestHandshakeTimeout(t *testing.T) {
	tr := rawTransport(t, Config{HandshakeTimeout: 200 * time.Millisecond})
	l := rawListen(t, tr)
	c, err := net.Dial("tcp", tcpAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "a pending upgrade", func() bool { return l.Pending() == 1 })
	start := time.Now()
	if !closedWithin(c, 5*time.Second) {
		t.Fatal("silent connection still open after 5 s")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v, want about 200 ms", d)
	}
	waitFor(t, "no pending upgrade", func() bool { return l.Pending() == 0 })
}

func TestPendingCapPerIPAndClose(t *testing.T) {
	refused := make(chan string, 1)
	tr := rawTransport(t, Config{HandshakeTimeout: time.Minute, MaxPendingPerIP: 2,
		Refused: func(limit string) { refused <- limit }})
	l := rawListen(t, tr)
	var silent []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", tcpAddr(l))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	waitFor(t, "two pending upgrades", func() bool { return l.Pending() == 2 })
	third, err := net.Dial("tcp", tcpAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if !closedWithin(third, 5*time.Second) {
		t.Fatal("third silent connection from one IP was not refused")
	}
	if got := <-refused; got != "ws-pending-per-ip" {
		t.Fatalf("refused by %q, want ws-pending-per-ip", got)
	}
	// Close ends upgrades in flight at once, not at their minute deadline.
	done := make(chan struct{})
	go func() { l.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for pending upgrades")
	}
	for _, c := range silent {
		if !closedWithin(c, 5*time.Second) {
			t.Fatal("pending connection open after Close")
		}
	}
}

func TestNotAnUpgradeGets400(t *testing.T) {
	tr := rawTransport(t, Config{})
	l := rawListen(t, tr)
	c, err := net.Dial("tcp", tcpAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
}

func TestOversizedRequestRefused(t *testing.T) {
	tr := rawTransport(t, Config{})
	l := rawListen(t, tr)
	c, err := net.Dial("tcp", tcpAddr(l))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go fmt.Fprintf(c, "GET / HTTP/1.1\r\nX: %s\r\n\r\n", strings.Repeat("a", 2*maxRequestBytes))
	if !closedWithin(c, 5*time.Second) {
		t.Fatal("oversized request kept the connection open")
	}
}

func TestManyConnections(t *testing.T) {
	tr := rawTransport(t, Config{})
	l := rawListen(t, tr)
	const n = 200
	go func() {
		for {
			s, _, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer s.Close()
				io.Copy(s, s)
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := tr.dial(ctx, l.Multiaddr())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			msg := fmt.Sprintf("hello %d", i)
			c.Write([]byte(msg))
			buf := make([]byte, len(msg))
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
				errs <- fmt.Errorf("echo %d: %q, %v", i, buf, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func FuzzUpgrade(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\x82\x00"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte("\x00\xff"))
	up := &websocket.Upgrader{ReadBufferSize: 512, WriteBufferSize: 512, CheckOrigin: func(*http.Request) bool { return true }}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// The client sends its bytes and half-closes, as a peer that
		// stops talking: the upgrade must end, never hang or panic.
		go func() {
			c.Write(data)
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c)
		}()
		ws, err := upgrade(s, up, time.Now().Add(2*time.Second))
		if err == nil {
			ws.Close()
		}
	})
}

// A dial goes through the HTTP proxy Config.Proxy names (CONNECT), as it
// does through HTTPS_PROXY by default.
func TestDialThroughProxy(t *testing.T) {
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	connects := make(chan string, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := pl.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || req.Method != http.MethodConnect {
			return
		}
		connects <- req.Host
		up, err := net.Dial("tcp", req.Host)
		if err != nil {
			return
		}
		defer up.Close()
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\n\r\n")
		go func() { io.Copy(up, br); up.Close() }()
		io.Copy(c, up)
	}()
	proxyURL, _ := url.Parse("http://" + pl.Addr().String())
	tr := rawTransport(t, Config{Proxy: http.ProxyURL(proxyURL)})
	l := rawListen(t, rawTransport(t, Config{}))
	c, s := dialAccept(t, tr, l)
	if got := <-connects; got != tcpAddr(l) {
		t.Fatalf("proxy asked for %q, want %q", got, tcpAddr(l))
	}
	c.Write([]byte("via proxy"))
	buf := make([]byte, 9)
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "via proxy" {
		t.Fatalf("read %q, %v", buf, err)
	}
	c.Close()
	s.Close()
}
