// Package config is a node's configuration (package node's Config): the
// struct, its defaults and its validation. It does not import package
// node, so the node's subpackages and tools can use it.
package config

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/overlay-net/overlay/internal/wstransport"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/certs"
	"github.com/overlay-net/overlay/node/topics"
	"github.com/overlay-net/overlay/node/tun"
	"github.com/overlay-net/overlay/node/tunnel"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
	"github.com/overlay-net/overlay/relay/client"
)

// DefaultNetwork is the network name a node joins unless told otherwise.
const DefaultNetwork = "overlay"

// DefaultRelayListen are the addresses a public node listens on by default:
// TCP for libp2p peers, WebSocket for peers behind proxies and firewalls.
var DefaultRelayListen = []string{"/ip4/0.0.0.0/tcp/4100", "/ip4/0.0.0.0/tcp/4101/ws", "/ip4/0.0.0.0/udp/4100/quic-v1"}

// DefaultPeerListen are the addresses a private node listens on by default:
// ephemeral TCP and QUIC ports that nobody outside can dial, but that hole
// punching can open through a NAT. A WebSocket-only node listens nowhere.
var DefaultPeerListen = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}

// DefaultRelayedGrace is how long a relayed connection to a peer that is
// also reached directly may sit idle before it is closed.
const DefaultRelayedGrace = 10 * time.Second

// DefaultRepublish is how often a node republishes its peer record when
// nothing changed; a change of reservations republishes at once.
const DefaultRepublish = 10 * time.Minute

// Agent is the agent version a node announces.
const Agent = "overlay/0.2.0"

// Config is everything a node needs. Start from DefaultConfig, which holds
// every default in one place; New validates and fills in nothing, so a
// field left at zero by mistake is an error, not a silent default.
type Config struct {
	Role    protocol.Role
	Network string
	// NetworkKey, when set, makes membership a secret: the handshake admits
	// only peers that prove they hold the same key.
	NetworkKey []byte
	Key        crypto.PrivKey
	// PSK, when set, makes the network a libp2p private network: every
	// connection is encrypted with it before any libp2p byte, so a peer
	// without it cannot even finish the transport handshake. libp2p
	// supports it on TCP and WebSocket only: the node then has no QUIC.
	PSK pnet.PSK
	// Certs, with a CA and a certificate file, runs the network in
	// certificate mode (node/certs): members prove a CA-signed certificate
	// in the handshake. Self, Logger and Now are the node's.
	Certs certs.Config
	// CAPub, when set (certificate mode sets it to Certs.CA), is the network CA's public key: the node holds,
	// spreads and enforces the newest revocation list and access policy
	// that CA signed (node/trust), kept in DataDir.
	CAPub ed25519.PublicKey
	// DataDir holds the peer book; "" keeps it in memory only.
	DataDir string
	// Listen addresses. A private node needs none. Each must bind, or the
	// node does not start; with ListenBestEffort one that does not is a
	// warning (log, status, health) as long as another binds.
	Listen           []ma.Multiaddr
	ListenBestEffort bool
	// Relays a private node reserves on (full /p2p/ addresses).
	Relays []ma.Multiaddr
	// WebSocketOnly leaves TCP and QUIC out of the transports, as for a
	// node behind a proxy that passes only HTTP. Such a node cannot be
	// hole-punched: it is reached through relays only. Clear Listen (or
	// keep only WebSocket addresses) with it: DefaultConfig's TCP and QUIC
	// ports are an error then, not silently dropped.
	WebSocketOnly bool
	// WebSocket tunes the WebSocket transport (buffers, upgrade deadline,
	// caps on un-upgraded connections; the certificate files of /tls/ws
	// listen addresses, CertFile and KeyFile, and the CA file /tls/ws
	// dials trust, CAFile); zero fields take its defaults.
	WebSocket wstransport.Config
	// RelayedGrace is how long a relayed connection to a peer also reached
	// directly may sit idle before it is closed; 0 keeps it.
	RelayedGrace time.Duration
	// Bootstrap are DHT peers to join through, besides the relays.
	Bootstrap []ma.Multiaddr
	// DisableDHT leaves the node out of the DHT: peers are found only
	// through addresses already known and this node's relays.
	DisableDHT bool
	// Republish is how often the node republishes its signed peer record
	// when nothing changed.
	Republish time.Duration
	// Relay limits, for a public node.
	Relay relay.Config
	// Keeper retry settings, for a private node; Relays, Admission and
	// Logger are set by the node.
	Keeper client.Config
	// Expose are local TCP services offered to members from the start
	// (node/tunnel); more are exposed at run time through Tunnels().
	Expose []tunnel.Exposure
	// ExposeTargets restricts the hosts exposed services may connect to
	// (zero: any host).
	ExposeTargets tunnel.Targets
	// Topics bounds group messaging (node/topics); DisableTopics leaves
	// it out.
	Topics        topics.Limits
	DisableTopics bool
	// Book bounds the peer book: how long strangers stay, and how many
	// peers it holds.
	Book   book.Policy
	Logger *slog.Logger
	// Metrics, when set, receives go-libp2p's collectors and the overlay's
	// own (node/metrics); a registry per node, so many nodes in one
	// process do not collide. Nil: no overlay metrics.
	Metrics *prometheus.Registry
	// HandshakeVersion is the version announced in the handshake. Tests
	// set it to pose as another release.
	HandshakeVersion int
	// TUN, when set, brings up the overlay network interface (node/tun).
	TUN *tun.Options
}

// DefaultConfig returns the configuration of a node of role with every
// default set; the caller adds the Key (and, for a private node, Relays).
func DefaultConfig(role protocol.Role) Config {
	c := Config{
		Role:             role,
		Network:          DefaultNetwork,
		Republish:        DefaultRepublish,
		Relay:            relay.DefaultConfig(),
		Keeper:           client.DefaultConfig(),
		Book:             book.DefaultPolicy(),
		HandshakeVersion: protocol.Version,
		RelayedGrace:     DefaultRelayedGrace,
		Topics:           topics.DefaultLimits(),
	}
	listen := DefaultPeerListen
	if role == protocol.RolePublic {
		listen = DefaultRelayListen
	}
	for _, s := range listen {
		c.Listen = append(c.Listen, ma.StringCast(s))
	}
	return c
}

// Validate reports every setting that cannot work, each naming its field.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Role != protocol.RolePublic && c.Role != protocol.RolePrivate {
		bad("role must be %q or %q, not %q", protocol.RolePublic, protocol.RolePrivate, c.Role)
	}
	if c.Key == nil {
		bad("no identity key")
	}
	if c.Network == "" {
		bad("network name is empty")
	}
	if c.HandshakeVersion <= 0 {
		bad("handshake version must be positive, not %d", c.HandshakeVersion)
	}
	if c.Republish <= 0 {
		bad("republish interval must be positive, not %s", c.Republish)
	}
	if c.CAPub != nil && len(c.CAPub) != ed25519.PublicKeySize {
		bad("CA public key must be %d bytes, not %d", ed25519.PublicKeySize, len(c.CAPub))
	}
	if c.RelayedGrace < 0 {
		bad("relayed grace must not be negative, not %s", c.RelayedGrace)
	}
	if c.WebSocketOnly {
		for _, a := range c.Listen {
			if !isWebSocket(a) {
				bad("WebSocket only, yet told to listen on %s (drop it, or --ws-only)", a)
			}
		}
	}
	if len(c.PSK) > 0 {
		if len(c.PSK) != 32 {
			bad("pre-shared key must be 32 bytes, not %d", len(c.PSK))
		}
		for _, a := range c.Listen {
			if IsQUIC(a) {
				bad("a private network (pre-shared key) cannot use QUIC, yet told to listen on %s (drop it)", a)
			}
		}
		for _, a := range c.Relays {
			if IsQUIC(a) {
				bad("a private network (pre-shared key) cannot use QUIC, yet given the relay %s (use its TCP or WebSocket address)", a)
			}
		}
	}
	if err := c.Certs.Validate(len(c.NetworkKey) > 0); err != nil {
		errs = append(errs, err)
	}
	if !c.DisableTopics {
		if err := c.Topics.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.Book.Validate(); err != nil {
		errs = append(errs, err)
	}
	switch c.Role {
	case protocol.RolePublic:
		if err := c.Relay.Validate(); err != nil {
			errs = append(errs, err)
		}
	case protocol.RolePrivate:
		if len(c.Relays) == 0 {
			break // reachable only by dialing out; tests and embedders do this
		}
		kc := c.Keeper
		kc.Relays = c.Relays
		if err := kc.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if w := c.WebSocket; w.ReadBuffer < 0 || w.AcceptReadBuffer < 0 || w.WriteBuffer < 0 {
		bad("WebSocket buffers must not be negative (read %d, accept read %d, write %d)", w.ReadBuffer, w.AcceptReadBuffer, w.WriteBuffer)
	}
	if w := c.WebSocket; (w.CertFile == "") != (w.KeyFile == "") {
		bad("a TLS certificate needs its key and a key its certificate (--tls-cert %q, --tls-key %q)", w.CertFile, w.KeyFile)
	} else if w.CertFile == "" && w.TLS == nil {
		for _, a := range c.Listen {
			if wstransport.IsSecure(a) {
				bad("listen address %s is WebSocket over TLS: it needs a certificate and key (--tls-cert FILE --tls-key FILE)", a)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// IsQUIC reports whether a is a QUIC address, which a private network
// (PSK) cannot use.
func IsQUIC(a ma.Multiaddr) bool {
	for _, c := range a {
		if code := c.Protocol().Code; code == ma.P_QUIC || code == ma.P_QUIC_V1 {
			return true
		}
	}
	return false
}

func isWebSocket(a ma.Multiaddr) bool {
	for _, c := range a {
		if code := c.Protocol().Code; code == ma.P_WS || code == ma.P_WSS {
			return true
		}
	}
	return false
}
