package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	nt "github.com/overlay-net/overlay/node/nodetest"
)

// The status page lists the node's topics and, asked to follow one, shows
// its messages as they arrive.
func TestStatusPageFollowsTopic(t *testing.T) {
	a := nt.Peer(t, nil, nt.WithDirect(0))
	b := nt.Peer(t, nil, nt.WithDirect(0))
	cctx := nt.Context(t, 30*time.Second)
	if _, err := b.Connect(cctx, a.FullAddrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	url := "http://" + serveAddr(t, a) + "/"
	ctx, problems := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("load %s: %v", url, err)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys("#follow-topic", "fleet")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click("#follow")); err != nil {
		t.Fatal(err)
	}
	row := `#topics tr[data-topic="fleet"]`
	nt.Eventually(t, 10*time.Second, "page lists the followed topic", func() bool {
		return textOf(ctx, row+" td:nth-child(4)") == "1"
	})
	if err := b.Topics().Join("fleet"); err != nil {
		t.Fatal(err)
	}
	nt.Eventually(t, 20*time.Second, "b sees a follow", func() bool {
		ts := b.Topics().Topics()
		return len(ts) == 1 && len(ts[0].Peers) == 1
	})
	if _, err := b.Topics().Publish(context.Background(), "fleet", []byte("<b>hello</b>")); err != nil {
		t.Fatal(err)
	}
	nt.Eventually(t, 10*time.Second, "page shows the message", func() bool {
		return textOf(ctx, "#messages tbody tr td:nth-child(4)") == "<b>hello</b>" &&
			textOf(ctx, "#messages tbody tr td:nth-child(2)") == b.ID().String()
	})
	if ps := problems(); len(ps) > 0 {
		t.Errorf("console errors on the status page:\n%s", strings.Join(ps, "\n"))
	}
}
