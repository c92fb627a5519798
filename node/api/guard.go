package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/overlay-net/overlay/protocol"
)

// MaxBody caps a request body: the largest message as base64 (4/3 of it) or
// as JSON text the way Client writes it (at most twice its size: only `"`,
// `\` and U+2028/9 are escaped), with room for the other fields. Bigger
// bodies are refused with 413 before they are read.
const MaxBody = 2*protocol.MaxMessageSize + 64<<10

// Bounds on concurrent work, so that a flood of requests cannot grow the
// node's memory without limit: each body read holds up to MaxBody, each
// running action (a send holds its message) a little more.
const (
	// maxBodies is how many request bodies are read and decoded at once.
	maxBodies = 4
	// maxActions is how many requests that change or do something (every
	// method but GET and HEAD) run at once. Reads stay outside this bound:
	// status, health and metrics must answer while sends are stuck.
	maxActions = 64
	// busyWait is how long a request waits for its turn before 503.
	busyWait = 2 * time.Second
)

// ErrNeedToken means the API was asked to listen beyond loopback without an
// access token.
var ErrNeedToken = errors.New("a control API reachable from other hosts needs an access token (--api-token FILE)")

// guard is what every request passes before a handler sees it: where it
// claims to go (Host), where it comes from (Origin), who sends it (token),
// and how many run at once. Browsers are the threat on loopback: any page the
// user visits may POST to 127.0.0.1, and a DNS-rebound name reaches it
// with a foreign Host.
type guard struct {
	loopback bool   // bound to a loopback address
	token    []byte // empty: none configured
	bodies   chan struct{}
	actions  chan struct{}
	log      *slog.Logger

	mu       sync.Mutex
	lastLog  time.Time
	unlogged int
}

func newGuard(addr *net.TCPAddr, token []byte, log *slog.Logger) *guard {
	return &guard{loopback: addr.IP.IsLoopback(), token: token, log: log,
		bodies: make(chan struct{}, maxBodies), actions: make(chan struct{}, maxActions)}
}

// loopbackHost reports whether a Host header names this machine by a name
// no one else controls: localhost or a loopback IP literal. DNS rebinding
// needs a name of the attacker's, so any other name is refused. The port
// is not checked: a forward (overlay forward) or a container's port mapping
// reaches the API on another one, and the Origin check below still keeps
// other local origins out.
func loopbackHost(host string) bool {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// wrap returns next behind the guard.
func (g *guard) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.loopback && !loopbackHost(r.Host) {
			g.refuse(w, r, http.StatusForbidden, fmt.Errorf("host %q is not this API's address (DNS rebinding?); use http://127.0.0.1:PORT", r.Host))
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !strings.EqualFold(o, "http://"+r.Host) {
			g.refuse(w, r, http.StatusForbidden, fmt.Errorf("requests from origin %q are refused: only the API's own status page may call it from a browser", o))
			return
		}
		// Browsers send this even where they omit Origin; "none" is a URL
		// the user typed.
		if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
			g.refuse(w, r, http.StatusForbidden, fmt.Errorf("cross-site request refused (Sec-Fetch-Site: %s)", s))
			return
		}
		// The status page itself is static and carries no data; its script
		// sends the token (from the URL fragment) with each of its calls.
		if len(g.token) > 0 && !(r.Method == http.MethodGet && r.URL.Path == "/") && !g.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="overlay"`)
			g.refuse(w, r, http.StatusUnauthorized, errors.New("missing or wrong API token: send Authorization: Bearer <token> (overlay commands: --api-token FILE or $OVERLAY_API_TOKEN)"))
			return
		}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		if !acquire(r.Context(), g.actions) {
			WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("busy: %d requests already running; try again", maxActions))
			return
		}
		defer func() { <-g.actions }()
		if r.ContentLength != 0 {
			if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
				WriteError(w, http.StatusUnsupportedMediaType, fmt.Errorf("request body must be JSON (Content-Type: application/json), not %q", r.Header.Get("Content-Type")))
				return
			}
			if r.ContentLength > MaxBody {
				w.Header().Set("Connection", "close")
				WriteError(w, http.StatusRequestEntityTooLarge, errTooLarge)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		}
		r = r.WithContext(context.WithValue(r.Context(), bodySemKey{}, g.bodies))
		next.ServeHTTP(w, r)
	})
}

var errTooLarge = fmt.Errorf("request body too large (max %d bytes)", MaxBody)

func (g *guard) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), g.token) == 1
}

// refuse answers a refused request and logs it, at most once a minute with
// the count since: a page hammering the API must not flood the log.
func (g *guard) refuse(w http.ResponseWriter, r *http.Request, code int, err error) {
	WriteError(w, code, err)
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.lastLog) < time.Minute {
		g.unlogged++
		return
	}
	g.log.Warn("control API refused a request", "from", r.RemoteAddr, "method", r.Method, "path", r.URL.Path,
		"status", code, "reason", err, "refused_unlogged", g.unlogged)
	g.lastLog, g.unlogged = time.Now(), 0
}

// acquire takes a slot of sem, waiting at most busyWait.
func acquire(ctx context.Context, sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(busyWait)
	defer t.Stop()
	select {
	case sem <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// bodySemKey carries the body semaphore to ReadJSON.
type bodySemKey struct{}
