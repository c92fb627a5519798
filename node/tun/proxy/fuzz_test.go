package proxy_test

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/overlay-net/overlay/node/tun/proxy"
)

// FuzzReadRequest parses a SOCKS5 greeting then a request: no input
// crashes, reads past the protocol's 2+255 and 262 bytes, or yields a
// request without a host.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte{5, 1, 0, 5, 1, 0, 3, 5, 'a', '.', 'o', 'v', 'l', 0, 80})
	f.Add([]byte{5, 1, 0, 5, 1, 0, 1, 100, 64, 0, 1, 0, 22})
	f.Add([]byte{5, 1, 0, 5, 1, 0, 4, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 22})
	f.Add([]byte{5, 2, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		if err := proxy.ReadGreeting(r); err != nil {
			return
		}
		used := len(b) - r.Len()
		if used > 2+255 {
			t.Fatalf("greeting read %d bytes", used)
		}
		req, err := proxy.ReadRequest(r)
		if n := len(b) - r.Len() - used; n > 262 {
			t.Fatalf("request read %d bytes", n)
		}
		var re *proxy.RequestError
		if err != nil && errors.As(err, &re) && re.Rep == proxy.RepSucceeded {
			t.Fatalf("refusal with success code: %v", err)
		}
		if err == nil {
			if req.Host == "" {
				t.Fatal("request without host")
			}
			if _, perr := netip.ParseAddr(req.Host); perr != nil && len(req.Host) > 255 {
				t.Fatalf("name of %d bytes", len(req.Host))
			}
		}
	})
}
