package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/api"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
)

// daemonFlags are the flags both node commands take.
type daemonFlags struct {
	data, key, network, netKey, api, addrFile, logLevel, logFormat string
	listen, bootstrap                                              maddrs
	noDHT                                                          bool
	republish                                                      time.Duration
}

func (d *daemonFlags) register(fs *flag.FlagSet, role string) {
	fs.StringVar(&d.data, "data", defaultDataDir(role), "data directory (peer book; identity key unless --key)")
	fs.StringVar(&d.key, "key", "", "identity key file, created on first start (default DATA/identity.key)")
	fs.StringVar(&d.network, "network", node.DefaultNetwork, "network name; nodes of other networks are refused")
	fs.StringVar(&d.netKey, "network-key", "", "file holding the network's shared secret (at least 16 bytes); only nodes that prove they hold it are admitted")
	fs.StringVar(&d.api, "api", api.DefaultAddr, "control API address (keep it on loopback), written to DATA/api.addr; \"off\" disables it")
	fs.StringVar(&d.addrFile, "addr-file", "", "write the node's full /p2p/ multiaddrs to this file, one per line")
	fs.StringVar(&d.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&d.logFormat, "log-format", "text", "log format: text or json")
	fs.Var(&d.bootstrap, "bootstrap", "DHT bootstrap peer multiaddr ending in /p2p/<peer ID>, repeatable (relays are always used too)")
	fs.BoolVar(&d.noDHT, "no-dht", false, "stay out of the DHT: find peers only through known addresses and this node's relays")
	fs.DurationVar(&d.republish, "republish", node.DefaultRepublish, "republish this node's signed peer record this often (and at once when its addresses change)")
}

func defaultDataDir(role string) string {
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".overlay", role)
	}
	return filepath.Join(".overlay", role)
}

func runRelay(args []string) error {
	var d daemonFlags
	rc := relay.DefaultConfig()
	fs := newFlags("relay", "relay [flags]")
	d.register(fs, "relay")
	fs.Var(&d.listen, "listen", "listen multiaddr, repeatable (default "+strings.Join(node.DefaultRelayListen, " and ")+")")
	fs.IntVar(&rc.MaxReservations, "max-reservations", rc.MaxReservations, "most peers reserved at once")
	fs.IntVar(&rc.MaxCircuits, "max-circuits", rc.MaxCircuits, "most relayed connections open per peer")
	fs.IntVar(&rc.MaxReservationsPerIP, "max-reservations-per-ip", rc.MaxReservationsPerIP, "most reservations from one IP (peers behind one NAT share it)")
	fs.DurationVar(&rc.ReservationTTL, "reservation-ttl", rc.ReservationTTL, "reservation lifetime; peers renew at half of it")
	fs.IntVar(&rc.BufferSize, "relay-buffer", rc.BufferSize, "relay copy buffer per direction of a circuit, bytes")
	fs.DurationVar(&rc.LimitDuration, "limit-duration", 0, "cut a relayed connection after this long (0: never)")
	fs.Int64Var(&rc.LimitData, "limit-data", 0, "cut a relayed connection after this many bytes each way (0: never)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(d.listen) == 0 {
		for _, s := range node.DefaultRelayListen {
			d.listen = append(d.listen, ma.StringCast(s))
		}
	}
	return runNode(d, node.Config{Role: protocol.RolePublic, Listen: d.listen, Relay: rc})
}

func runPeer(args []string) error {
	var d daemonFlags
	var relays maddrs
	kc := relay.DefaultKeeperConfig()
	var noTCP bool
	fs := newFlags("peer", "peer --relay MADDR [--relay MADDR ...] [flags]")
	d.register(fs, "peer")
	fs.Var(&relays, "relay", "relay multiaddr ending in /p2p/<peer ID>, repeatable (required); /ws addresses are dialed over WebSocket")
	fs.Var(&d.listen, "listen", "listen multiaddr, repeatable (default: none; a private node needs no port)")
	fs.BoolVar(&noTCP, "ws-only", false, "use only the WebSocket transport (as behind an HTTP proxy)")
	fs.DurationVar(&kc.MaxBackoff, "retry-max", kc.MaxBackoff, "longest wait between attempts to reach a relay")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(relays) == 0 {
		fmt.Fprintln(fs.Output(), "overlay peer: at least one --relay is required")
		fs.Usage()
		return errUsage
	}
	if _, err := relay.ParseRelays(relays); err != nil {
		return err
	}
	return runNode(d, node.Config{Role: protocol.RolePrivate, Listen: d.listen, Relays: relays,
		WebSocketOnly: noTCP, Keeper: kc})
}

// runNode starts a node, its control API, and waits for SIGINT or SIGTERM.
func runNode(d daemonFlags, cfg node.Config) error {
	log, err := newLogger(d.logLevel, d.logFormat)
	if err != nil {
		return err
	}
	if d.key == "" {
		d.key = filepath.Join(d.data, "identity.key")
	}
	if err := os.MkdirAll(d.data, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	key, err := node.LoadOrCreateKey(d.key)
	if err != nil {
		return err
	}
	cfg.Key, cfg.Network, cfg.DataDir, cfg.Logger = key, d.network, d.data, log
	if d.netKey != "" {
		if cfg.NetworkKey, err = readNetworkKey(d.netKey); err != nil {
			return err
		}
	}
	cfg.Bootstrap, cfg.DisableDHT, cfg.Republish = d.bootstrap, d.noDHT, d.republish
	n, err := node.New(cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	var srv *api.Server
	if d.api != "off" {
		if srv, err = api.Listen(d.api, n, log); err != nil {
			return err
		}
		defer srv.Close()
		log.Info("control API listening", "addr", srv.Addr())
		// Tells scripts (and a --api 127.0.0.1:0 user) where the API is.
		if err := node.WriteFileAtomic(filepath.Join(d.data, "api.addr"), []byte(srv.Addr()+"\n"), 0o644); err != nil {
			return fmt.Errorf("write api.addr: %w", err)
		}
	}
	if err := announce(n, d.addrFile); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Info("shutting down")
	return closeWithin(n, srv, 10*time.Second)
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
	if err := node.WriteFileAtomic(addrFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("write address file: %w", err)
	}
	return nil
}

func closeWithin(n *node.Node, srv *api.Server, d time.Duration) error {
	done := make(chan error, 1)
	go func() {
		if srv != nil {
			srv.Close()
		}
		done <- n.Close()
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("shutdown took longer than %s", d)
	}
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad --log-level %q", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("bad --log-format %q (text or json)", format)
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
