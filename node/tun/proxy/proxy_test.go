package proxy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	xproxy "golang.org/x/net/proxy"

	"github.com/overlay-net/overlay/node/tun"
	"github.com/overlay-net/overlay/node/tun/dns"
	"github.com/overlay-net/overlay/node/tun/proxy"
)

var (
	aliceV4 = netip.MustParseAddr("100.64.5.6")
	aliceV6 = netip.MustParseAddr("fd5e:5::6")
)

// stack starts a userspace stack holding alice's addresses with an HTTP
// server inside it on port 80, and the proxies dialing through it, on
// loopback. It returns the SOCKS5 and HTTP proxy addresses.
func stack(t *testing.T) (socks, httpProxy string) {
	t.Helper()
	u, err := tun.NewUserspace([]netip.Addr{aliceV4, aliceV6}, 1280)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	l, err := u.Net().ListenTCPAddrPort(netip.AddrPortFrom(aliceV4, 80))
	if err != nil {
		t.Fatal(err)
	}
	web := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s from alice", r.URL.Path)
	}), ReadHeaderTimeout: 10 * time.Second}
	go web.Serve(l)
	l6, err := u.Net().ListenTCPAddrPort(netip.AddrPortFrom(aliceV6, 80))
	if err != nil {
		t.Fatal(err)
	}
	go web.Serve(l6)
	t.Cleanup(func() { web.Close() })

	p := proxy.New(proxy.Config{
		Dial: u.DialContext,
		Resolve: func(host string) (netip.Addr, netip.Addr, bool) {
			return dns.Resolve(func(name string) (netip.Addr, netip.Addr, bool) {
				return aliceV4, aliceV6, name == "alice"
			}, host)
		},
	})
	t.Cleanup(func() { p.Close() })
	ls, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lh, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ServeSOCKS5(ls); err != nil {
		t.Fatal(err)
	}
	if err := p.ServeHTTPProxy(lh); err != nil {
		t.Fatal(err)
	}
	return ls.Addr().String(), lh.Addr().String()
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", u, err)
	}
	return resp.StatusCode, string(b)
}

func TestSOCKS5ByName(t *testing.T) {
	socks, _ := stack(t)
	d, err := xproxy.SOCKS5("tcp", socks, nil, &net.Dialer{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: d.(xproxy.ContextDialer).DialContext,
	}}
	for _, u := range []string{"http://alice.overlay/a", "http://ALICE.overlay./b", "http://100.64.5.6/c", "http://[fd5e:5::6]/d"} {
		if code, body := get(t, c, u); code != 200 || !strings.HasPrefix(body, "hello /") {
			t.Errorf("GET %s: %d %q", u, code, body)
		}
	}
	// Refusals come back as SOCKS5 reply codes: an unknown name is host
	// unreachable; a member's closed port is connection refused (gVisor's
	// error text, recognized by the proxy).
	for host, want := range map[string]string{
		"bob.overlay:80":   "host unreachable",
		"example.com:80":   "host unreachable",
		"alice.overlay:81": "connection refused",
	} {
		_, err := d.(xproxy.ContextDialer).DialContext(context.Background(), "tcp", host)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("dial %s: %v, want %q", host, err, want)
		}
	}
}

func TestSOCKS5WithCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("no curl")
	}
	socks, _ := stack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "-sS", "--max-time", "30", "--socks5-hostname", socks,
		"http://alice.overlay/curl").CombinedOutput()
	if err != nil || string(out) != "hello /curl from alice" {
		t.Fatalf("curl: %v: %s", err, out)
	}
}

func TestHTTPProxy(t *testing.T) {
	_, hp := stack(t)
	pu, _ := url.Parse("http://" + hp)
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	// A plain http:// request is forwarded.
	if code, body := get(t, c, "http://alice.overlay/plain"); code != 200 || body != "hello /plain from alice" {
		t.Errorf("forwarded GET: %d %q", code, body)
	}
	if code, _ := get(t, c, "http://bob.overlay/"); code != http.StatusBadGateway {
		t.Errorf("GET to a non-member: %d, want 502", code)
	}
	// CONNECT opens a tunnel; bytes sent right behind the request pass.
	conn, err := net.DialTimeout("tcp", hp, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "CONNECT alice.overlay:80 HTTP/1.1\r\nHost: alice.overlay:80\r\n\r\n"+
		"GET /tunnel HTTP/1.1\r\nHost: alice.overlay\r\nConnection: close\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "hello /tunnel from alice" {
		t.Errorf("through the tunnel: %q", b)
	}
	// CONNECT to a non-member is refused.
	c2, err := net.DialTimeout("tcp", hp, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c2, "CONNECT nobody.overlay:22 HTTP/1.1\r\nHost: nobody.overlay:22\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil || resp.StatusCode != http.StatusBadGateway {
		t.Errorf("CONNECT to a non-member: %v %v", resp, err)
	}
}

// TestCloseEndsTunnels checks that Close ends an open tunnel and returns.
func TestCloseEndsTunnels(t *testing.T) {
	u, err := tun.NewUserspace([]netip.Addr{aliceV4}, 1280)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	l, err := u.Net().ListenTCPAddrPort(netip.AddrPortFrom(aliceV4, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	p := proxy.New(proxy.Config{Dial: u.DialContext, Resolve: func(string) (netip.Addr, netip.Addr, bool) {
		return netip.Addr{}, netip.Addr{}, false
	}})
	ls, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := p.ServeSOCKS5(ls); err != nil {
		t.Fatal(err)
	}
	d, _ := xproxy.SOCKS5("tcp", ls.Addr().String(), nil, &net.Dialer{Timeout: 30 * time.Second})
	c, err := d.Dial("tcp", "100.64.5.6:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q %v", buf, err)
	}
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return with a tunnel open")
	}
	if _, err := c.Read(buf); !errors.Is(err, io.EOF) && err == nil {
		t.Errorf("tunnel still open after Close")
	}
	if err := p.ServeSOCKS5(ls); err == nil {
		t.Error("serve after Close")
	}
}
