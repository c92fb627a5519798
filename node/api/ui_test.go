package api_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node/book"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// chromium finds Debian's chromium (or another Chrome); .ci/run installs it.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium binary (apt-get install chromium; .ci/run does): the status page is not tested in a browser here")
	return ""
}

// browser starts a headless Chromium for the test and collects every
// console error, uncaught exception and browser-log error of its page.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)), chromedp.Flag("headless", true), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1400, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	var mu sync.Mutex
	var problems []string
	done := make(chan struct{})
	messages := chromedp.Console(ctx) // subscribed now, before any page loads
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc(); <-done })
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

// textOf reads the text of the first element matching sel, "" if none.
func textOf(ctx context.Context, sel string) string {
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.textContent : ""; })()`, sel)
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		return ""
	}
	return s
}

// The status page in a real headless Chromium: two private peers and a
// relay; the page of peer a shows its identity and relay, then b in the
// peer book once connected, relayed, and then direct when a direct
// connection replaces the relayed one, all without a reload and without a
// console error.
func TestStatusPageInChromium(t *testing.T) {
	r := nt.Relay(t)
	relays := []ma.Multiaddr{nt.WSAddr(t, r)}
	a := nt.Peer(t, relays, nt.WithDirect(time.Minute))
	b := nt.Peer(t, relays, nt.WithDirect(time.Minute))
	url := "http://" + serveAddr(t, a) + "/"
	nt.Eventually(t, 10*time.Second, "both reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })

	ctx, problems := browser(t)
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("load %s: %v", url, err)
	}
	nt.Eventually(t, 10*time.Second, "page shows a's identity and reserved relay", func() bool {
		return textOf(ctx, "#peer-id") == a.ID().String() && textOf(ctx, "#role") == "private" &&
			textOf(ctx, fmt.Sprintf(`#relays tr[data-relay=%q] .state`, r.ID())) == "reserved"
	})

	cctx := nt.Context(t, 30*time.Second)
	if _, err := a.ConnectPeer(cctx, peer.AddrInfo{ID: b.ID(), Addrs: b.RelayedAddrs()}); err != nil {
		t.Fatal(err)
	}
	row := fmt.Sprintf(`#peers tr[data-peer=%q]`, b.ID())
	nt.Eventually(t, 10*time.Second, "page shows b as a relayed member", func() bool {
		return textOf(ctx, row+" .path") == string(book.PathRelayed) && textOf(ctx, row+" .state") == "member"
	})
	nt.Eventually(t, 10*time.Second, "page says why b is relayed", func() bool {
		w := a.WhyRelayed(b.ID())
		return textOf(ctx, row+" .why") == string(w.Reason)+": "+w.Detail
	})
	if nat := textOf(ctx, "#nat"); nat == "" {
		t.Error("page shows nothing for the NAT")
	}
	direct := network.WithForceDirectDial(cctx, "test: as a hole punch would")
	if err := a.Host().Connect(direct, peer.AddrInfo{ID: b.ID(), Addrs: b.DirectAddrs()}); err != nil {
		t.Fatal(err)
	}
	nt.Eventually(t, 10*time.Second, "page shows b's path change to direct", func() bool {
		return textOf(ctx, row+" .path") == string(book.PathDirect)
	})
	if strings.TrimSpace(textOf(ctx, row+" td:nth-child(5)")) == "-" {
		t.Error("page shows no direct address for b")
	}
	if p := os.Getenv("OVERLAY_SCREENSHOT"); p != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if ps := problems(); len(ps) > 0 {
		t.Errorf("console errors on the status page:\n%s", strings.Join(ps, "\n"))
	}
	t.Logf("browser part took %s", time.Since(start).Round(time.Millisecond))
}
