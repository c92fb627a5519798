package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node/api"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
)

// raw sends one request to the API at addr as a browser or a script might,
// with the headers given, and returns the status and the JSON error text.
func raw(t *testing.T, addr, method, path, contentType string, body io.Reader, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var eb api.ErrorBody
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(data, &eb); err != nil || eb.Error == "" {
			t.Errorf("%s %s: %s with a body that is no JSON error: %q", method, path, resp.Status, data)
		}
	}
	return resp.StatusCode, eb.Error
}

// The loopback API refuses what a web page or a rebound DNS name could
// send, and anything but one JSON value of bounded size, each with a status
// and an error that says why.
func TestAPIRefusesBrowsersAndBadBodies(t *testing.T) {
	n := nt.Relay(t)
	addr := serveAddr(t, n)
	_, port, _ := net.SplitHostPort(addr)
	send := `{"peer":"` + n.ID().String() + `","data":"x"}`

	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "[::1]:" + port, "LOCALHOST:" + port, "127.0.0.1:1", "localhost"} {
		if code, msg := raw(t, addr, "GET", "/v1/health", "", nil, "Host", host); code != http.StatusOK {
			t.Errorf("Host %s: %d %s, want 200", host, code, msg)
		}
	}
	for _, host := range []string{"evil.example:" + port, "evil.example", "127.0.0.1.evil.example:" + port, "0.0.0.0:" + port, "192.0.2.1:" + port} {
		code, msg := raw(t, addr, "GET", "/v1/status", "", nil, "Host", host)
		if code != http.StatusForbidden || !strings.Contains(msg, "host") {
			t.Errorf("Host %s: %d %q, want 403 naming the host", host, code, msg)
		}
	}
	// The measured attack: a page on another origin POSTs text/plain,
	// which a browser sends without asking first.
	code, msg := raw(t, addr, "POST", "/v1/send", "text/plain", strings.NewReader(send), "Origin", "http://evil.example")
	if code != http.StatusForbidden || !strings.Contains(msg, "evil.example") {
		t.Errorf("foreign Origin: %d %q, want 403 naming the origin", code, msg)
	}
	if code, msg := raw(t, addr, "POST", "/v1/send", "application/json", strings.NewReader(send), "Origin", "null"); code != http.StatusForbidden {
		t.Errorf("Origin null: %d %q, want 403", code, msg)
	}
	if code, msg := raw(t, addr, "GET", "/v1/status", "", nil, "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden {
		t.Errorf("Sec-Fetch-Site cross-site: %d %q, want 403", code, msg)
	}
	// The API's own page calls it with its own origin.
	if code, msg := raw(t, addr, "POST", "/v1/send", "application/json", strings.NewReader(send), "Origin", "http://"+addr, "Sec-Fetch-Site", "same-origin"); code != http.StatusBadRequest || !strings.Contains(msg, "itself") {
		t.Errorf("own origin, send to self: %d %q, want 400 'cannot send to this node itself'", code, msg)
	}
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "", "multipart/form-data; boundary=x"} {
		code, msg := raw(t, addr, "POST", "/v1/send", ct, strings.NewReader(send))
		if code != http.StatusUnsupportedMediaType || !strings.Contains(msg, "application/json") {
			t.Errorf("Content-Type %q: %d %q, want 415", ct, code, msg)
		}
	}
	for _, body := range []string{send + "garbage", send + send, send + " {"} {
		code, msg := raw(t, addr, "POST", "/v1/send", "application/json; charset=utf-8", strings.NewReader(body))
		if code != http.StatusBadRequest || !strings.Contains(msg, "trailing data") {
			t.Errorf("body %q: %d %q, want 400 trailing data", body, code, msg)
		}
	}
	if code, msg := raw(t, addr, "POST", "/v1/send", "application/json", strings.NewReader(send+"\n")); code != http.StatusBadRequest || !strings.Contains(msg, "itself") {
		t.Errorf("one value and a newline: %d %q, want it accepted (then 400 for self)", code, msg)
	}

	want := fmt.Sprintf("request body too large (max %d bytes)", api.MaxBody)
	big := `{"peer":"x","data":"` + strings.Repeat("a", api.MaxBody) + `"}`
	if code, msg := raw(t, addr, "POST", "/v1/send", "application/json", strings.NewReader(big)); code != http.StatusRequestEntityTooLarge || msg != want {
		t.Errorf("oversized body with a length: %d %q, want 413 %q", code, msg, want)
	}
	// Without a length (chunked) the cap bites while reading.
	chunked := io.MultiReader(strings.NewReader(big))
	if code, msg := raw(t, addr, "POST", "/v1/send", "application/json", chunked); code != http.StatusRequestEntityTooLarge || msg != want {
		t.Errorf("oversized chunked body: %d %q, want 413 %q", code, msg, want)
	}
}

// The body cap fits the largest message however the client encodes it:
// text that JSON escapes most and binary data.
func TestAPIBodyCapFitsLargestMessage(t *testing.T) {
	r := nt.Relay(t)
	a := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r)})
	b := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r)})
	ca := serve(t, a)
	ctx := nt.Context(t, 60*time.Second)
	nt.Eventually(t, 10*time.Second, "both reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
	worst := bytes.Repeat([]byte(`<"\&`), protocol.MaxMessageSize/4)
	binary := bytes.Repeat([]byte{0, 0xff}, protocol.MaxMessageSize/2)
	for name, data := range map[string][]byte{"escaped text": worst, "binary": binary} {
		if _, err := ca.Send(ctx, b.ID().String(), data, 20*time.Second); err != nil {
			t.Errorf("send %s of the largest message size: %v", name, err)
		}
	}
}

// Beyond loopback the API needs a token; with one, every call but the
// static status page must carry it.
func TestAPIToken(t *testing.T) {
	n := nt.Relay(t)
	if _, err := api.Listen("0.0.0.0:0", n, nil); !errors.Is(err, api.ErrNeedToken) {
		t.Fatalf("Listen on 0.0.0.0 without a token = %v, want ErrNeedToken", err)
	}
	const token = "0123456789abcdef-secret"
	s, err := api.Listen("0.0.0.0:0", n, nil, api.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.Loopback() {
		t.Error("0.0.0.0 reported as loopback")
	}
	_, port, _ := net.SplitHostPort(s.Addr())
	addr := "127.0.0.1:" + port
	ctx := nt.Context(t, 10*time.Second)

	if _, err := api.NewClient(addr).Status(ctx); apiCode(err) != http.StatusUnauthorized || !strings.Contains(err.Error(), "token") {
		t.Errorf("no token: %v, want 401 naming the token", err)
	}
	if _, err := api.NewClient(addr).WithToken("wrong").Status(ctx); apiCode(err) != http.StatusUnauthorized {
		t.Errorf("wrong token: %v, want 401", err)
	}
	if st, err := api.NewClient(addr).WithToken(token).Status(ctx); err != nil || st.PeerID != n.ID().String() {
		t.Errorf("right token: %+v, %v", st, err)
	}
	// Any Host is fine beyond loopback (the token is the defence), a
	// foreign Origin still is not.
	if code, _ := raw(t, addr, "GET", "/v1/health", "", nil, "Host", "node.example:"+port, "Authorization", "Bearer "+token); code != http.StatusOK {
		t.Errorf("token, other Host: %d, want 200", code)
	}
	if code, _ := raw(t, addr, "GET", "/v1/health", "", nil, "Origin", "http://evil.example", "Authorization", "Bearer "+token); code != http.StatusForbidden {
		t.Errorf("token, foreign Origin: %d, want 403", code)
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("status page without token: %v %v, want 200", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}

	// On loopback a token is optional, and enforced when set.
	l, err := api.Listen("127.0.0.1:0", n, nil, api.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if _, err := api.NewClient(l.Addr()).Health(ctx); apiCode(err) != http.StatusUnauthorized {
		t.Errorf("loopback with token, none sent: %v, want 401", err)
	}
	if _, err := api.NewClient(l.Addr()).WithToken(token).Health(ctx); err != nil {
		t.Errorf("loopback with token: %v", err)
	}
}

// Requests that act are bounded: beyond the bound a request waits briefly,
// then gets 503, while status reads still answer.
func TestAPIBoundsConcurrentActions(t *testing.T) {
	n := nt.Relay(t)
	s, err := api.Listen("127.0.0.1:0", n, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	entered, release := make(chan struct{}, 1000), make(chan struct{})
	s.Handle("POST /test/block", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		w.WriteHeader(http.StatusNoContent)
	})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(release); wg.Wait() })
	ctx := nt.Context(t, 30*time.Second)
	post := func() int {
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+s.Addr()+"/test/block", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const bound = 64
	for range bound {
		wg.Go(func() { post() })
	}
	for i := range bound {
		select {
		case <-entered:
		case <-ctx.Done():
			t.Fatalf("only %d of %d requests entered", i, bound)
		}
	}
	start := time.Now()
	if code := post(); code != http.StatusServiceUnavailable {
		t.Errorf("request %d: %d, want 503", bound+1, code)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("503 came after %s; the wait must be brief", d)
	}
	if _, err := api.NewClient(s.Addr()).Status(ctx); err != nil {
		t.Errorf("status while every action slot is taken: %v", err)
	}
	if code, _ := raw(t, s.Addr(), "GET", "/v1/health", "", nil); code != http.StatusOK {
		t.Errorf("health while busy: %d", code)
	}
}

// A ping's time budget saturates instead of overflowing into a deadline
// already past (the measured --count 3000000 --interval 1h).
func TestPingBudgetSaturates(t *testing.T) {
	for _, c := range []struct {
		count    int
		interval time.Duration
		want     time.Duration
	}{
		{4, time.Second, 34 * time.Second},
		{0, time.Hour, 30 * time.Second},
		{3000000, time.Hour, math.MaxInt64},
		{math.MaxInt, time.Nanosecond, math.MaxInt64},
		{2, math.MaxInt64 / 2, math.MaxInt64},
	} {
		if got := api.PingBudget(c.count, c.interval); got != c.want || got <= 0 {
			t.Errorf("PingBudget(%d, %s) = %s, want %s", c.count, c.interval, got, c.want)
		}
	}
}

// Request bodies are read a few at a time: clients that trickle their
// bodies in hold the readers, and the next body waits briefly, then 503.
func TestAPIBoundsBodyReads(t *testing.T) {
	n := nt.Relay(t)
	addr := serveAddr(t, n)
	var wg sync.WaitGroup
	var writers []*io.PipeWriter
	t.Cleanup(func() {
		for _, w := range writers {
			w.CloseWithError(errors.New("test over"))
		}
		wg.Wait()
	})
	for range 4 {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		wg.Go(func() {
			req, _ := http.NewRequest("POST", "http://"+addr+"/v1/connect", pr)
			req.Header.Set("Content-Type", "application/json")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
		wg.Go(func() { pw.Write([]byte(`{"target":`)) }) // and nothing more
	}
	nt.Eventually(t, 30*time.Second, "a fifth body refused while four trickle in", func() bool {
		code, msg := raw(t, addr, "POST", "/v1/connect", "application/json", strings.NewReader(`{"target":"x"}`))
		return code == http.StatusServiceUnavailable && strings.Contains(msg, "bodies")
	})
	if code, _ := raw(t, addr, "GET", "/v1/status", "", nil); code != http.StatusOK {
		t.Errorf("status while bodies are busy: %d", code)
	}
}
