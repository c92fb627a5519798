package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/overlay-net/overlay/node/api"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// The measured attack in a real browser: a page on another origin fires
// the requests a browser sends without asking (text/plain, no-cors) and a
// JSON one, at the loopback API, asking it to expose a local service. None
// gets through; the page then reports it is done.
func TestForeignPageCannotDriveAPI(t *testing.T) {
	n := nt.Relay(t)
	addr := serveAddr(t, n)
	body := `{"name":"pwned","target":"127.0.0.1:22"}`
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><script>
const u = "http://%s/v1/expose", b = %q;
Promise.allSettled([
  fetch(u, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: b}),
  fetch(u, {method: "POST", mode: "no-cors", body: new Blob([b])}),
  fetch(u, {method: "POST", headers: {"Content-Type": "application/json"}, body: b}),
]).then(() => { document.title = "done"; });
</script>`, addr, body)
	}))
	t.Cleanup(evil.Close)

	ctx, _ := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(evil.URL)); err != nil {
		t.Fatal(err)
	}
	nt.Eventually(t, 20*time.Second, "the evil page fired its requests", func() bool {
		title, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.title`))
		return err == nil && title == "done"
	})
	if es := n.Tunnels().Exposures(); len(es) != 0 {
		t.Fatalf("a foreign page exposed a service through the API: %+v", es)
	}
}

// With --api-token the status page works when opened with the token in
// its fragment, and shows an error without it.
func TestStatusPageWithToken(t *testing.T) {
	n := nt.Relay(t)
	const token = "status-page-token-0123456789"
	s, err := api.Listen("127.0.0.1:0", n, nil, api.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, _ := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+s.Addr()+"/")); err != nil {
		t.Fatal(err)
	}
	nt.Eventually(t, 10*time.Second, "page without token says the node refuses", func() bool {
		return textOf(ctx, "#error") != ""
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+s.Addr()+"/#token="+token)); err != nil {
		t.Fatal(err)
	}
	nt.Eventually(t, 10*time.Second, "page with token shows the node", func() bool {
		return textOf(ctx, "#peer-id") == n.ID().String()
	})
}
