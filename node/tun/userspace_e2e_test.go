package tun_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	ma "github.com/multiformats/go-multiaddr"
	xproxy "golang.org/x/net/proxy"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/node/tun"
	"github.com/overlay-net/overlay/node/tun/dns"
)

// withUserspace runs the node's overlay in userspace mode with a SOCKS5
// proxy on an ephemeral loopback port, members let in on the accept ports.
func withUserspace(accept ...uint16) nt.Option {
	return func(c *node.Config) {
		c.TUN = &tun.Options{Mode: tun.ModeUserspace, SOCKS: "127.0.0.1:0", Accept: accept}
	}
}

// TestUserspaceThroughRelay: two private members in userspace mode (no
// root) reach each other through a relay. An HTTP server listening inside
// one member's stack is fetched from the other through its SOCKS5 proxy by
// name (PEERID.overlay, base58 and case-insensitive), with Go's client and
// with curl --socks5-hostname; the other member's DNS server answers for
// the overlay's names through the overlay itself. A port a accepts
// reaches a's host service on loopback.
func TestUserspaceThroughRelay(t *testing.T) {
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostWeb := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s from a's host", r.URL.Path)
	}), ReadHeaderTimeout: 10 * time.Second}
	go hostWeb.Serve(host)
	t.Cleanup(func() { hostWeb.Close() })
	hostPort := uint16(host.Addr().(*net.TCPAddr).Port)

	r := nt.Relay(t)
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a := nt.Peer(t, relays, withUserspace(hostPort))
	b := nt.Peer(t, relays, withUserspace())
	nt.Eventually(t, 30*time.Second, "both peers reserved", func() bool {
		return nt.Reserved(a, 1) && nt.Reserved(b, 1)
	})
	ctx := nt.Context(t, 60*time.Second)
	if _, err := b.Connect(ctx, a.ID().String()); err != nil {
		t.Fatalf("connect b->a: %v", err)
	}

	stackA, _, _ := a.TUN().Userspace()
	if stackA == nil {
		t.Fatal("a runs no userspace stack")
	}
	a4, a6 := a.TUN().Addrs()
	for _, ip := range []netip.Addr{a4, a6} {
		l, err := stackA.Net().ListenTCPAddrPort(netip.AddrPortFrom(ip, 80))
		if err != nil {
			t.Fatal(err)
		}
		web := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello %s from a", r.URL.Path)
		}), ReadHeaderTimeout: 10 * time.Second}
		go web.Serve(l)
		t.Cleanup(func() { web.Close() })
	}

	_, socks, _ := b.TUN().Userspace()
	if socks == nil {
		t.Fatal("b runs no SOCKS5 proxy")
	}
	d, err := xproxy.SOCKS5("tcp", socks.String(), nil, &net.Dialer{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: d.(xproxy.ContextDialer).DialContext, DisableKeepAlives: true,
	}}
	urls := []string{
		"http://" + a.ID().String() + ".overlay/base58",
		"http://" + dns.Label(a.ID()) + ".OVERLAY/label",
		"http://[" + a6.String() + "]/v6",
	}
	for _, u := range urls {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("GET %s through b's SOCKS5 proxy: %v", u, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(body) != "hello "+urlPath(u)+" from a" {
			t.Errorf("GET %s: %d %q %v", u, resp.StatusCode, body, err)
		}
	}

	hostURL := fmt.Sprintf("http://%s.overlay:%d/accepted", a.ID(), hostPort)
	resp, err := client.Get(hostURL)
	if err != nil {
		t.Fatalf("GET %s: %v", hostURL, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello /accepted from a's host" {
		t.Errorf("GET %s: %q", hostURL, body)
	}
	// overlay status shows the interface and what it carried.
	st := b.Status().TUN
	if st == nil || st.Mode != "userspace" || st.IPv4 != b.TUN().Status().IPv4 || st.Stats.PacketsOut == 0 || st.Stats.PacketsIn == 0 {
		t.Errorf("b's status shows the interface as %+v, want userspace with packets both ways", st)
	}

	if curl, err := exec.LookPath("curl"); err == nil {
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(cctx, curl, "-sS", "--max-time", "50", "--socks5-hostname", socks.String(),
			"http://"+a.ID().String()+".overlay/curl").CombinedOutput()
		if err != nil || string(out) != "hello /curl from a" {
			t.Errorf("curl --socks5-hostname: %v: %s", err, out)
		}
	} else {
		t.Log("no curl: skipped curl --socks5-hostname")
	}

	// From inside b's stack, a's DNS server (a's IPv4, port 53, over the
	// overlay) answers for b's own name.
	stackB, _, _ := b.TUN().Userspace()
	b4, _ := b.TUN().Addrs()
	uc, err := stackB.Net().DialUDPAddrPort(netip.AddrPort{}, netip.AddrPortFrom(a4, 53))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	q := new(mdns.Msg)
	q.SetQuestion(b.ID().String()+".overlay.", mdns.TypeA)
	c := &mdns.Client{Timeout: 30 * time.Second}
	ans, _, err := c.ExchangeWithConn(q, &mdns.Conn{Conn: uc})
	if err != nil {
		t.Fatalf("DNS query to a over the overlay: %v", err)
	}
	if len(ans.Answer) != 1 || ans.Answer[0].(*mdns.A).A.String() != b4.String() {
		t.Errorf("a's DNS answer for b: %v, want %s", ans.Answer, b4)
	}
}

func urlPath(u string) string {
	for i := len("http://"); i < len(u); i++ {
		if u[i] == '/' {
			return u[i:]
		}
	}
	return "/"
}
