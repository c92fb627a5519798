// Package nodetest starts real overlay nodes on 127.0.0.1 for tests.
package nodetest

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
	"github.com/overlay-net/overlay/relay/client"
)

// Option changes a node's config before it starts.
type Option func(*node.Config)

// WithNetwork sets the network name.
func WithNetwork(name string) Option { return func(c *node.Config) { c.Network = name } }

// WithKey sets the identity.
func WithKey(k crypto.PrivKey) Option { return func(c *node.Config) { c.Key = k } }

// WithDataDir sets the data directory.
func WithDataDir(d string) Option { return func(c *node.Config) { c.DataDir = d } }

// WithListen sets the listen addresses.
func WithListen(addrs ...string) Option {
	return func(c *node.Config) {
		c.Listen = nil
		for _, a := range addrs {
			c.Listen = append(c.Listen, ma.StringCast(a))
		}
	}
}

// WithDirect gives a private node TCP and a loopback TCP listen address,
// so that a peer can reach it directly as after a hole punch; its relayed
// connections close once idle for grace when a direct one exists.
func WithDirect(grace time.Duration) Option {
	return func(c *node.Config) {
		c.WebSocketOnly = false
		c.Listen = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}
		c.RelayedGrace = grace
	}
}

// WithRelayConfig changes the relay limits of a public node.
func WithRelayConfig(fn func(*relay.Config)) Option {
	return func(c *node.Config) {
		fn(&c.Relay)
	}
}

// WithKeeper changes the reservation keeper's settings of a private node.
func WithKeeper(fn func(*client.Config)) Option {
	return func(c *node.Config) { fn(&c.Keeper) }
}

// WithVersion makes the node announce another handshake version.
func WithVersion(v int) Option { return func(c *node.Config) { c.HandshakeVersion = v } }

// Key returns a fresh Ed25519 identity.
func Key(t testing.TB) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Logger logs to the test at debug level when OVERLAY_TEST_LOG is set.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("OVERLAY_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).
		With("node", t.Name())
}

// Relay starts a public node listening on TCP and WebSocket on 127.0.0.1.
func Relay(t testing.TB, opts ...Option) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig(protocol.RolePublic)
	cfg.Key, cfg.Logger = Key(t), Logger(t)
	cfg.Listen = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0"), ma.StringCast("/ip4/127.0.0.1/tcp/0/ws")}
	return start(t, cfg, opts)
}

// Peer starts a private node that has only the WebSocket transport and no
// listen address, reserving on the given relays.
func Peer(t testing.TB, relays []ma.Multiaddr, opts ...Option) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig(protocol.RolePrivate)
	cfg.Key, cfg.Logger, cfg.Relays, cfg.WebSocketOnly = Key(t), Logger(t), relays, true
	cfg.Listen = nil
	// Quick retries keep tests short; a test of the schedule sets its own.
	cfg.Keeper.MinBackoff, cfg.Keeper.MaxBackoff = 50*time.Millisecond, 500*time.Millisecond
	cfg.Keeper.FastRetry = 50 * time.Millisecond
	return start(t, cfg, opts)
}

func start(t testing.TB, cfg node.Config, opts []Option) *node.Node {
	t.Helper()
	for _, o := range opts {
		o(&cfg)
	}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// WSAddr returns the node's full WebSocket address.
func WSAddr(t testing.TB, n *node.Node) ma.Multiaddr { return addrWith(t, n, true) }

// TCPAddr returns the node's full plain TCP address.
func TCPAddr(t testing.TB, n *node.Node) ma.Multiaddr { return addrWith(t, n, false) }

func addrWith(t testing.TB, n *node.Node, ws bool) ma.Multiaddr {
	t.Helper()
	for _, a := range n.FullAddrs() {
		if strings.Contains(a.String(), "/ws") == ws {
			return a
		}
	}
	t.Fatalf("node %s has no such address among %v", n.ID(), n.FullAddrs())
	return nil
}

// Eventually polls cond until it holds or d passes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Reserved reports whether n holds at least count reservations.
func Reserved(n *node.Node, count int) bool { return len(n.Reservations()) >= count }

// WithLogger sets the node's logger.
func WithLogger(l *slog.Logger) Option { return func(c *node.Config) { c.Logger = l } }

// LogRecorder is a slog handler that keeps every record at or above a level,
// so a test can assert what a node logged.
type LogRecorder struct {
	Level slog.Level
	mu    sync.Mutex
	recs  []string
}

// Logger returns a logger writing into r.
func (r *LogRecorder) Logger() *slog.Logger { return slog.New(r) }

func (r *LogRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.Level }

func (r *LogRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	r.mu.Lock()
	r.recs = append(r.recs, b.String())
	r.mu.Unlock()
	return nil
}

func (r *LogRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *LogRecorder) WithGroup(string) slog.Handler      { return r }

// Records returns what was logged so far.
func (r *LogRecorder) Records() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recs)
}

// WithBootstrap adds DHT bootstrap peers.
func WithBootstrap(addrs ...ma.Multiaddr) Option {
	return func(c *node.Config) { c.Bootstrap = append(c.Bootstrap, addrs...) }
}

// WithoutDHT leaves the node out of the DHT.
func WithoutDHT() Option { return func(c *node.Config) { c.DisableDHT = true } }

// LogBuffer collects a node's text logs; it is safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WithLogBuffer logs the node at debug level into b.
func WithLogBuffer(b *LogBuffer) Option {
	return func(c *node.Config) {
		c.Logger = slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// Context returns a context that ends after d or with the test.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// a node that must come back at the same address.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WithNetworkKey sets the network key.
func WithNetworkKey(k string) Option { return func(c *node.Config) { c.NetworkKey = []byte(k) } }

// WithMetrics gives the node its own Prometheus registry.
func WithMetrics() Option {
	return func(c *node.Config) { c.Metrics = prometheus.NewRegistry() }
}
