package api

import (
	_ "embed"
	"net/http"
)

// statusPage is the page at the API root: the node's status and peer book,
// refreshed by its own script from /v1/status and /v1/peers. Plain HTML
// and JavaScript, embedded: nothing to build, nothing fetched elsewhere.
//
//go:embed ui/index.html
var statusPage []byte

func serveStatusPage(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Only this origin's scripts and fetches; nobody may frame the page.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(statusPage)
}
