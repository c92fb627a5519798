package main

// Hostile requests to the relay's control API: what a web page the relay's
// operator visits could send (foreign Origin, foreign Host as after DNS
// rebinding, text/plain POSTs that need no CORS preflight), huge and
// parallel bodies, and garbage JSON.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// apiCounts are the answers to hostile requests.
type apiCounts struct {
	foreignSent, foreignAccepted atomic.Int64 // foreign Origin or Host: accepted = 2xx
	bigSent, bigRefused          atomic.Int64 // refused = an answer before the whole body was read, or 413
	bigBytes                     atomic.Int64 // bytes of big bodies the relay read
	garbageSent, garbage5xx      atomic.Int64
	failed                       atomic.Int64 // no answer at all
}

// attackAPI runs n workers of hostile requests against the control API
// until stopped; in force once each kind was sent once.
func attackAPI(ctx context.Context, t target, n int) (*running, error) {
	n = max(n, 4) // one worker of each kind at least
	ctx, cancel := context.WithCancel(ctx)
	c := &apiCounts{}
	client := &http.Client{Timeout: 20 * time.Second}
	base := "http://" + t.API
	send := fmt.Sprintf(`{"peer":%q,"data":"hello from a web page"}`, t.Member)

	// do sends r and reads its answer; 0 when none came (counted as
	// failed unless the attack is over).
	do := func(r *http.Request) int {
		resp, err := client.Do(r)
		if err != nil {
			if ctx.Err() == nil {
				c.failed.Add(1)
			}
			return 0
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		return resp.StatusCode
	}

	// Each kind's requests; a worker runs them in turn.
	foreign := func() {
		reqs := []*http.Request{}
		r, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/status", nil)
		r.Host = "evil.example" // DNS rebinding: the browser sends the attacker's name
		reqs = append(reqs, r)
		r, _ = http.NewRequestWithContext(ctx, "POST", base+"/v1/send", strings.NewReader(send))
		r.Header.Set("Origin", "http://evil.example")
		r.Header.Set("Content-Type", "text/plain") // a "simple" request: no preflight
		reqs = append(reqs, r)
		r, _ = http.NewRequestWithContext(ctx, "GET", base+"/v1/peers", nil)
		r.Header.Set("Origin", "http://evil.example")
		reqs = append(reqs, r)
		for _, r := range reqs {
			c.foreignSent.Add(1)
			if do(r)/100 == 2 {
				c.foreignAccepted.Add(1)
			}
		}
	}
	big := func(size int64) {
		cr := &countingReader{r: io.LimitReader(bigBody(t.Member), size)}
		r, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/send", cr)
		r.Header.Set("Content-Type", "application/json")
		r.ContentLength = size
		c.bigSent.Add(1)
		resp, err := client.Do(r)
		c.bigBytes.Add(cr.n.Load())
		if err != nil {
			if ctx.Err() == nil && cr.n.Load() < size {
				c.bigRefused.Add(1) // cut off while sending
			}
			return
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode == http.StatusRequestEntityTooLarge || cr.n.Load() < size {
			c.bigRefused.Add(1)
		}
	}
	garbage := func() {
		b := make([]byte, 4096)
		rand.Read(b)
		for _, path := range []string{"/v1/send", "/v1/connect", "/v1/ping", "/v1/expose", "/v1/forward"} {
			r, _ := http.NewRequestWithContext(ctx, "POST", base+path, bytes.NewReader(b))
			r.Header.Set("Content-Type", "application/json")
			c.garbageSent.Add(1)
			if do(r)/100 == 5 {
				c.garbage5xx.Add(1)
			}
		}
	}
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	ready.Add(n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			once := sync.OnceFunc(ready.Done)
			defer once()
			for ctx.Err() == nil {
				switch i % 4 {
				case 0:
					foreign()
				case 1:
					big(256 << 20) // one huge body
				case 2:
					big(16 << 20) // many parallel big ones
				default:
					garbage()
				}
				once()
				pauseCtx(ctx, 100*time.Millisecond)
			}
		}()
	}
	waitGroupCtx(ctx, &ready)
	return &running{stop: func() string {
		cancel()
		wg.Wait()
		return fmt.Sprintf("foreign Origin/Host: %d of %d accepted; big bodies: %d of %d refused early, %.0f MiB of them sent; garbage JSON: %d sent, %d answered 5xx; %d no answer",
			c.foreignAccepted.Load(), c.foreignSent.Load(), c.bigRefused.Load(), c.bigSent.Load(),
			float64(c.bigBytes.Load())/(1<<20), c.garbageSent.Load(), c.garbage5xx.Load(), c.failed.Load())
	}, apiAccepted: &c.foreignAccepted}, nil
}

// bigBody is a send request whose data never ends.
func bigBody(member string) io.Reader {
	return io.MultiReader(strings.NewReader(fmt.Sprintf(`{"peer":%q,"data":"`, member)), repeatReader('a'))
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
