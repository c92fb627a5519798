// Command stockrelay runs a stock go-libp2p circuit-relay v2 node: default
// host options, default relay resources (2 KiB copy buffer), with only the
// per-circuit limit lifted so a benchmark can push data through it. It is the
// baseline bench/datapath compares the overlay relay against.
//
//	go run ./bench/stockrelay --listen /ip4/127.0.0.1/tcp/0/ws --addr-file F
//
// It prints its full /p2p/ addresses, one per line, and runs until SIGINT or
// SIGTERM.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

func main() {
	listen := flag.String("listen", "/ip4/127.0.0.1/tcp/0/ws", "listen multiaddr")
	addrFile := flag.String("addr-file", "", "also write the full /p2p/ addresses to this file")
	buffer := flag.Int("buffer", 0, "relay copy buffer per direction, bytes (0: stock default, 2048)")
	noLimit := flag.Bool("no-limit", false, "no circuit limit at all (Limit = nil) instead of a 24 h / 2^62 byte limit")
	flag.Parse()
	if err := run(*listen, *addrFile, *buffer, *noLimit); err != nil {
		fmt.Fprintln(os.Stderr, "stockrelay:", err)
		os.Exit(1)
	}
}

func run(listen, addrFile string, buffer int, noLimit bool) error {
	h, err := libp2p.New(libp2p.ListenAddrStrings(listen))
	if err != nil {
		return fmt.Errorf("start host: %w", err)
	}
	defer h.Close()

	rc := relay.DefaultResources()
	// WithResources replaces the whole struct, Limit included
	// (shared/NOTES.md): lift the 2 min / 128 KiB cut, keep everything else.
	rc.Limit = &relay.RelayLimit{Duration: 24 * time.Hour, Data: 1 << 62}
	if noLimit {
		rc.Limit = nil
	}
	if buffer > 0 {
		rc.BufferSize = buffer
	}
	r, err := relay.New(h, relay.WithResources(rc),
		// The stock filter keeps only public addresses; on loopback the
		// reservation would carry none.
		relay.WithReservationAddressFilter(func(ma.Multiaddr) bool { return true }))
	if err != nil {
		return fmt.Errorf("start relay: %w", err)
	}
	defer r.Close()

	full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	if err != nil {
		return err
	}
	var lines []string
	for _, a := range full {
		lines = append(lines, a.String())
	}
	out := strings.Join(lines, "\n") + "\n"
	fmt.Print(out)
	if addrFile != "" {
		if err := os.WriteFile(addrFile+".tmp", []byte(out), 0o644); err != nil {
			return err
		}
		if err := os.Rename(addrFile+".tmp", addrFile); err != nil {
			return err
		}
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return nil
}
