package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/overlay-net/overlay/node"
)

// MetricsHandler serves the node's Prometheus metrics in the text format,
// nil when the node has no registry.
func MetricsHandler(n *node.Node) http.Handler {
	reg := n.Metrics()
	if reg == nil {
		return nil
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorHandling: promhttp.ContinueOnError})
}

// MetricsServer serves /metrics alone on its own address (--metrics), for a
// scraper that must not reach the control API.
type MetricsServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// ListenMetrics binds addr and serves n's metrics there until Close.
func ListenMetrics(addr string, n *node.Node, log *slog.Logger) (*MetricsServer, error) {
	h := MetricsHandler(n)
	if h == nil {
		return nil, errors.New("serve metrics: the node has no metrics registry")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	m := &MetricsServer{ln: ln, done: make(chan struct{}),
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && log != nil {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return m, nil
}

// Addr returns the address metrics are served on.
func (m *MetricsServer) Addr() string { return m.ln.Addr().String() }

// Close stops the server and waits for it.
func (m *MetricsServer) Close() error {
	err := m.srv.Close()
	<-m.done
	return err
}
