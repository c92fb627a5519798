package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/overlay-net/overlay/internal/atomicfile"
	"github.com/overlay-net/overlay/internal/wstransport"
	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/api"
	"github.com/overlay-net/overlay/node/certs"
	"github.com/overlay-net/overlay/node/identity"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
	"github.com/overlay-net/overlay/relay/client"
)

// daemonFlags are the flags both node commands take that are not part of
// node.Config: files to read and where to log.
type daemonFlags struct {
	data, key, netKey, api, apiToken, addrFile, logLevel, logFormat, pprof, metrics string
	psk, acl, allow                                                                 string
	certs                                                                           certFlags
	listen                                                                          maddrs
	forwards                                                                        forwardSpecs
	tun                                                                             tunFlags
	tunProxy                                                                        tunProxyFlags
	// droppedQUIC are default listen addresses left out for --psk.
	droppedQUIC []string
}

// register binds the common flags: the node's own settings straight into
// cfg, whose values (from node.DefaultConfig) are the defaults shown.
func (x *daemon) register(fs *flag.FlagSet) {
	d, cfg, role := &x.d, &x.cfg, x.role
	fs.StringVar(&x.config, "config", "", "YAML file of settings, one key per flag (deploy/overlay.example.yaml); flags and OVERLAY_* variables win over it ($OVERLAY_CONFIG)")
	fs.StringVar(&d.data, "data", defaultDataDir(role), "data directory (peer book; identity key unless --key)")
	fs.StringVar(&d.key, "key", "", "identity key file, created on first start (default DATA/identity.key)")
	fs.StringVar(&cfg.Network, "network", cfg.Network, "network name; nodes of other networks are refused")
	fs.StringVar(&d.netKey, "network-key", "", "file holding the network's shared secret (at least 16 bytes); only nodes that prove they hold it are admitted")
	fs.StringVar(&d.certs.caPub, "ca-pub", "", "FILE of the network CA's public key ('overlay ca init'); the node keeps, spreads and enforces the newest revocation list and access policy this CA signed ('overlay ca publish'). With --cert: certificate mode, where only peers with a certificate it signed are admitted and a network without certificate mode refuses this node (excludes --network-key)")
	fs.StringVar(&d.certs.cert, "cert", "", "certificate mode: FILE of this node's member certificate ('overlay ca sign --peer ID'), proven in every handshake; a renewed file put in its place is used within "+certs.DefaultReloadEvery.String()+", no restart, connections kept")
	fs.DurationVar(&cfg.Certs.WarnBefore, "cert-warn", certs.DefaultWarnBefore, "certificate mode: warn (log, status, health, metric) this long before this node's certificate expires")
	fs.StringVar(&d.certs.revocations, "revocations", "", "certificate mode: FILE of a revocation list signed by the CA ('overlay ca revoke'); peers whose certificate it revokes are refused")
	fs.StringVar(&d.psk, "psk", "", "libp2p private network: swarm key FILE ('overlay psk new FILE'); peers without it cannot even finish the transport handshake. TCP and WebSocket only: QUIC is left out")
	defAPI := api.DefaultPeerAddr
	if role == "relay" {
		defAPI = api.DefaultRelayAddr
	}
	fs.StringVar(&d.api, "api", defAPI, "control API address (keep it on loopback; relay 7400, peer 7401 by default), written to DATA/api.addr; \"off\" disables it; any other than loopback needs --api-token")
	fs.StringVar(&d.apiToken, "api-token", "", "file holding the control API's access token (at least 16 bytes); every request must then send it (Authorization: Bearer); required when --api is not loopback")
	fs.StringVar(&d.addrFile, "addr-file", "", "write the node's full /p2p/ multiaddrs to this file, one per line")
	fs.StringVar(&d.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&d.logFormat, "log-format", "text", "log format: text or json (one object per line)")
	fs.StringVar(&d.metrics, "metrics", "", "also serve Prometheus metrics at http://ADDR/metrics, apart from the control API (which serves them too)")
	fs.StringVar(&d.pprof, "pprof", "", "serve Go's profiler (net/http/pprof) on this loopback address, for profiling under load (default: off)")
	fs.Var((*maddrs)(&cfg.Bootstrap), "bootstrap", "DHT bootstrap peer multiaddr ending in /p2p/<peer ID>, repeatable (relays are always used too)")
	fs.BoolVar(&cfg.DisableDHT, "no-dht", false, "stay out of the DHT: find peers only through known addresses and this node's relays")
	fs.DurationVar(&cfg.Republish, "republish", cfg.Republish, "republish this node's signed peer record this often (and at once when its addresses change)")
	fs.DurationVar(&cfg.Book.StrangerTTL, "stranger-ttl", cfg.Book.StrangerTTL, "forget peers that are not members (foreign, rejected, discovered) this long after they were last seen")
	fs.IntVar(&cfg.Book.MaxPeers, "max-book", cfg.Book.MaxPeers, "most peers in the peer book; strangers seen longest ago go first, members are always kept")
	fs.Var((*exposures)(&cfg.Expose), "expose", "serve the local TCP service HOST:PORT to members as NAME (NAME=HOST:PORT), repeatable; see 'overlay expose'")
	fs.BoolVar(&cfg.ListenBestEffort, "listen-best-effort", false, "start even if some --listen addresses cannot be bound (a port taken), as long as one binds: each is a WARN line and shows in status and health (default: any address that does not bind stops the start)")
	fs.Var(&cfg.ExposeTargets, "expose-targets", "hosts exposed services may connect to: any, loopback, or a comma-separated list of CIDR prefixes and IPs (with loopback if wanted); members reach whatever an exposure targets through this node, so narrow it where only local services are meant (default: any, as LAN hosts are exposed too)")
	registerTopicLimits(fs, &cfg.Topics)
	fs.IntVar(&cfg.WebSocket.ReadBuffer, "ws-read-buffer", wstransport.DefaultReadBuffer, "WebSocket read buffer of each dialed connection, bytes, held for the connection's life; larger means fewer read system calls")
	fs.IntVar(&cfg.WebSocket.AcceptReadBuffer, "ws-accept-read-buffer", wstransport.DefaultAcceptReadBuffer, "WebSocket read buffer of each accepted connection, bytes, held for the connection's life: a relay's memory per peer (data is read ahead into pooled buffers while it flows)")
	fs.IntVar(&cfg.WebSocket.WriteBuffer, "ws-write-buffer", wstransport.DefaultWriteBuffer, "WebSocket write buffer, bytes, taken from a pool while writing: holding a whole TLS record (16406 bytes) makes each record one frame and one write")
	fs.StringVar(&cfg.WebSocket.CertFile, "tls-cert", "", "PEM certificate chain served on /tls/ws (wss) listen addresses; a renewed file put in its place is served to new connections within "+wstransport.DefaultCertCheckInterval.String()+", no restart needed")
	fs.StringVar(&cfg.WebSocket.KeyFile, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&cfg.WebSocket.CAFile, "tls-ca", "", "PEM file of the CA certificates that /tls/ws (wss) addresses dialed are checked against, in place of the system roots (default: the system roots)")
	fs.Var(&d.forwards, "forward", "listen on LOCAL-ADDR and carry each connection to a member's service (LOCAL-ADDR=PEER-ID/NAME), repeatable; see 'overlay forward'")
}

func defaultDataDir(role string) string {
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".overlay", role)
	}
	return filepath.Join(".overlay", role)
}

// daemon is a node command's settings, as its flags fill them.
type daemon struct {
	d      daemonFlags
	cfg    node.Config
	role   string
	config string
}

// newDaemon returns the settings of a node command (relay or peer) and the
// flag set bound to them: the one definition of every setting, which the
// environment and a config file also fill (parse).
func newDaemon(role string) (*daemon, *flag.FlagSet) {
	if role == "relay" {
		return newRelay()
	}
	return newPeer()
}

func newRelay() (*daemon, *flag.FlagSet) {
	x := &daemon{role: "relay", cfg: node.DefaultConfig(protocol.RolePublic)}
	rc := &x.cfg.Relay
	fs := newFlags("relay", "relay [flags]\n\n"+stopText)
	x.register(fs)
	fs.Var(&x.d.listen, "listen", "listen multiaddr, repeatable (default "+strings.Join(node.DefaultRelayListen, " and ")+")")
	fs.IntVar(&rc.MaxReservations, "max-reservations", rc.MaxReservations, "most peers reserved at once")
	fs.IntVar(&rc.MaxCircuits, "max-circuits", rc.MaxCircuits, "most relayed connections open per peer")
	fs.IntVar(&rc.MaxReservationsPerIP, "max-reservations-per-ip", rc.MaxReservationsPerIP, "most reservations from one IP (peers behind one NAT share it)")
	fs.DurationVar(&rc.ReservationTTL, "reservation-ttl", rc.ReservationTTL, "reservation lifetime; peers renew at half of it")
	fs.IntVar(&rc.BufferSize, "relay-buffer", rc.BufferSize, "relay copy buffer per direction of a circuit, bytes")
	fs.DurationVar(&rc.LimitDuration, "limit-duration", 0, "cut a relayed connection after this long (0: never)")
	fs.Int64Var(&rc.LimitData, "limit-data", 0, "cut a relayed connection after this many bytes each way (0: never)")
	fs.StringVar(&x.d.acl, "relay-acl", string(rc.ACL), "whom the relay serves: members (handshaken members only), open (also any libp2p peer, with stock limits: 2 min and 128 KiB per circuit, 1/8 of the reservations), allowlist (members and the --relay-allow peers)")
	fs.StringVar(&x.d.allow, "relay-allow", "", "FILE of peer IDs the allowlist relay serves besides members, one a line, # comments")
	fs.DurationVar(&rc.StrangerGrace, "stranger-grace", rc.StrangerGrace, "close a non-member's inbound connections this long after it turns out no member, unless the relay serves it (0: keep them)")
	return x, fs
}

func newPeer() (*daemon, *flag.FlagSet) {
	x := &daemon{role: "peer", cfg: node.DefaultConfig(protocol.RolePrivate)}
	cfg, kc := &x.cfg, &x.cfg.Keeper
	fs := newFlags("peer", "peer --relay MADDR [--relay MADDR ...] [flags]\n\n"+stopText)
	x.register(fs)
	fs.Var(&x.d.listen, "listen", "listen multiaddr, repeatable (default "+strings.Join(node.DefaultPeerListen, " and ")+": ephemeral ports nobody outside can dial, which hole punching opens through NATs)")
	fs.Var((*maddrs)(&cfg.Relays), "relay", "relay multiaddr ending in /p2p/<peer ID>, repeatable (required); /ws addresses are dialed over WebSocket")
	fs.BoolVar(&cfg.WebSocketOnly, "ws-only", false, "use only the WebSocket transport and listen nowhere (as behind an HTTP proxy); rules out direct connections: every byte goes through a relay")
	fs.DurationVar(&cfg.RelayedGrace, "relayed-grace", cfg.RelayedGrace, "close a relayed connection to a peer reached directly once idle this long (0: keep it)")
	fs.DurationVar(&kc.MaxBackoff, "retry-max", kc.MaxBackoff, "longest wait between attempts to reach a relay")
	fs.DurationVar(&kc.FastRetry, "retry-fast", kc.FastRetry, "wait between attempts right after losing a relay, so a restarted relay is reserved on again at once")
	fs.DurationVar(&kc.FastWindow, "retry-fast-for", kc.FastWindow, "how long after losing a relay to keep retrying at --retry-fast before backing off (0: back off at once)")
	x.d.tun.register(fs)
	x.d.tunProxy.register(fs)
	return x, fs
}

// finish checks what the flags alone cannot and fills in what depends on
// several of them.
func (x *daemon) finish() error {
	var errs []error
	if x.role == "peer" {
		if len(x.cfg.Relays) == 0 {
			errs = append(errs, errNoRelay)
		} else if _, err := client.ParseRelays(x.cfg.Relays); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case len(x.d.listen) > 0:
		x.cfg.Listen = x.d.listen
	case x.cfg.WebSocketOnly:
		x.cfg.Listen = nil
	case x.d.psk != "":
		// A private network has no QUIC: leave the default QUIC ports
		// out (runNode says so); an explicit one is an error (Validate).
		var keep []ma.Multiaddr
		for _, a := range x.cfg.Listen {
			if node.IsQUIC(a) {
				x.d.droppedQUIC = append(x.d.droppedQUIC, a.String())
			} else {
				keep = append(keep, a)
			}
		}
		x.cfg.Listen = keep
	}
	if o, err := x.d.tun.options(); err != nil {
		errs = append(errs, err)
	} else if err := x.d.tunProxy.apply(o); err != nil {
		errs = append(errs, err)
	} else {
		x.cfg.TUN = o
	}
	if x.role == "relay" {
		acl, err := relay.ParseACL(x.d.acl)
		if err != nil {
			errs = append(errs, err)
		} else {
			x.cfg.Relay.ACL = acl
		}
		if x.d.allow != "" {
			if x.cfg.Relay.Allow, err = relay.ReadAllowlist(x.d.allow); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// errNoRelay is a private node's start without a relay.
var errNoRelay = errors.New("at least one relay is required (--relay MADDR)")

func runRelay(args []string) error { return runDaemon("relay", args) }

func runPeer(args []string) error { return runDaemon("peer", args) }

// runDaemon runs a node command: its settings from args, the environment
// and the file, checked as 'overlay config check' checks them, then the
// node until a signal stops it.
func runDaemon(role string, args []string) error {
	if capture != nil {
		_, fs := newDaemon(role)
		return parse(fs, args)
	}
	if err := checkEnv(os.Environ()); err != nil {
		return err
	}
	x, fs, _, err := loadChecked(role, args, "")
	switch {
	case errors.Is(err, errNoRelay):
		fmt.Fprintf(fs.Output(), "overlay peer: %v\n", errNoRelay)
		fs.Usage()
		return errUsage
	case err != nil:
		return err
	}
	return runNode(x.d, x.cfg)
}

// runNode starts a node, its control API, and waits for SIGINT or SIGTERM.
// Shutdown is bounded: after shutdownBound it returns even if something
// still hangs, and the process exits.
func runNode(d daemonFlags, cfg node.Config) error {
	// Caught from the start: a signal while the node starts stops it once
	// started, rather than killing it halfway (api.addr written, book not).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, stopSignals()...)
	defer signal.Stop(sigs)
	log, err := newLogger(d.logLevel, d.logFormat)
	if err != nil {
		return err
	}
	if d.key == "" {
		d.key = filepath.Join(d.data, "identity.key")
	}
	var token string
	if d.api != "off" {
		if token, err = apiToken(d.api, d.apiToken); err != nil {
			return err
		}
	}
	if err := checkDataDir(d.data); err != nil {
		return err
	}
	key, err := identity.LoadOrCreate(d.key)
	if err != nil {
		return err
	}
	cfg.Key, cfg.DataDir, cfg.Logger = key, d.data, log
	cfg.Metrics = prometheus.NewRegistry()
	cfg.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if d.netKey != "" {
		if cfg.NetworkKey, err = readNetworkKey(d.netKey); err != nil {
			return err
		}
	}
	if err := d.certs.certConfig(&cfg.Certs); err != nil {
		return err
	}
	splitCA(&cfg)
	if d.psk != "" {
		if cfg.PSK, err = identity.ReadPSK(d.psk); err != nil {
			return err
		}
		if len(d.droppedQUIC) > 0 {
			log.Info("private network (--psk): not listening on QUIC, which libp2p cannot protect with a pre-shared key", "dropped", d.droppedQUIC)
		}
	}
	if d.pprof != "" {
		if err := servePprof(d.pprof, log); err != nil {
			return err
		}
	}
	n, err := node.New(cfg)
	if err != nil {
		return err
	}
	closers := []io.Closer{n}
	if err := startForwards(n.Tunnels(), d.forwards); err != nil {
		_ = closeWithin(shutdownBound, closers...)
		return err
	}
	srv, err := serve(d, token, n, log)
	if srv != nil {
		closers = []io.Closer{srv, n}
	}
	if err == nil && d.metrics != "" {
		var ms *api.MetricsServer
		if ms, err = api.ListenMetrics(d.metrics, n, log); err == nil {
			log.Info("metrics listening", "addr", ms.Addr())
			closers = append([]io.Closer{ms}, closers...)
		}
	}
	if err != nil {
		_ = closeWithin(shutdownBound, closers...)
		return err
	}
	sig := <-sigs
	log.Info("shutting down", "signal", sig.String())
	return closeWithin(shutdownBound, closers...)
}

// stopText is what the node commands' usage says about signals.
const stopText = `SIGINT, SIGTERM and SIGHUP stop the node cleanly: it releases its
reservations or closes its relay service, saves the peer book and exits 0
(within 10 s, else exit 1). There is no reload: restart the node to apply
new settings. A SIGHUP ignored at start (nohup) stays ignored.`

// stopSignals are the signals that stop a node cleanly: SIGINT, SIGTERM,
// and SIGHUP (a closed terminal, or an operator expecting a reload: there
// is none, and dying without the shutdown lost the peer book and left
// reservations held). A SIGHUP ignored at start (nohup) stays ignored.
func stopSignals() []os.Signal {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	return sigs
}

// shutdownBound is how long a node may take to stop before the process
// exits anyway: a supervisor's stop timeout is usually longer.
const shutdownBound = 10 * time.Second

// serve starts the control API (unless off) and announces the node's
// addresses.
func serve(d daemonFlags, token string, n *node.Node, log *slog.Logger) (*api.Server, error) {
	if d.api == "off" {
		return nil, announce(n, d.addrFile)
	}
	var opts []api.Option
	if token != "" {
		opts = append(opts, api.WithToken(token))
	}
	s, err := api.Listen(d.api, n, log, opts...)
	if err != nil {
		return nil, err
	}
	log.Info("control API listening", "addr", s.Addr(), "token", token != "")
	if !s.Loopback() {
		log.Warn("control API reachable from other hosts: it can make this node dial, send and expose services; only the token keeps others out, and it travels in clear text (put TLS in front)", "addr", s.Addr())
	}
	// Tells scripts (and a --api 127.0.0.1:0 user) where the API is.
	if err := atomicfile.Write(filepath.Join(d.data, "api.addr"), []byte(s.Addr()+"\n"), 0o644); err != nil {
		return s, fmt.Errorf("write api.addr: %w", err)
	}
	return s, announce(n, d.addrFile)
}

// announce prints the node's full addresses and writes them to the address
// file, so scripts and other nodes can pick them up.
func announce(n *node.Node, addrFile string) error {
	var lines []string
	for _, a := range n.FullAddrs() {
		lines = append(lines, a.String())
	}
	fmt.Printf("peer ID: %s\n", n.ID())
	for _, l := range lines {
		fmt.Println(l)
	}
	if addrFile == "" {
		return nil
	}
	if err := atomicfile.Write(addrFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("write address file: %w", err)
	}
	return nil
}

// closeWithin closes each closer in order (nil ones skipped), giving up
// after d: what is still closing then is left to the process exit.
func closeWithin(d time.Duration, closers ...io.Closer) error {
	done := make(chan error, 1)
	go func() {
		var errs []error
		for _, c := range closers {
			errs = append(errs, c.Close())
		}
		done <- errors.Join(errs...)
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("shutdown took longer than %s; exiting anyway", d)
	}
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q is none of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log format %q is neither text nor json", format)
}

// readNetworkKey reads a network key file; surrounding white space is not
// part of the key, so `head -c 32 /dev/urandom | base64 > FILE` works.
func readNetworkKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read network key: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < 16 {
		return nil, fmt.Errorf("network key %s is %d bytes; use at least 16 (head -c 32 /dev/urandom | base64 > %s)", path, len(b), path)
	}
	return b, nil
}
