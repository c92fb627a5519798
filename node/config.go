package node

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
)

// DefaultNetwork is the network name a node joins unless told otherwise.
const DefaultNetwork = "overlay"

// DefaultRelayListen are the addresses a public node listens on by default:
// TCP for libp2p peers, WebSocket for peers behind proxies and firewalls.
var DefaultRelayListen = []string{"/ip4/0.0.0.0/tcp/4100", "/ip4/0.0.0.0/tcp/4101/ws"}

// Agent is the agent version a node announces.
const Agent = "overlay/0.1.0"

// Config is everything a node needs; the zero value of an optional field
// means its default.
type Config struct {
	Role    protocol.Role
	Network string
	// NetworkKey, when set, makes membership a secret: the handshake admits
	// only peers that prove they hold the same key.
	NetworkKey []byte
	Key        crypto.PrivKey
	// DataDir holds the peer book; "" keeps it in memory only.
	DataDir string
	// Listen addresses. A private node needs none.
	Listen []ma.Multiaddr
	// Relays a private node reserves on (full /p2p/ addresses).
	Relays []ma.Multiaddr
	// WebSocketOnly leaves TCP out of the transports, as for a node behind a
	// proxy that passes only HTTP.
	WebSocketOnly bool
	// Bootstrap are DHT peers to join through, besides the relays.
	Bootstrap []ma.Multiaddr
	// DisableDHT leaves the node out of the DHT: peers are found only
	// through addresses already known and this node's relays.
	DisableDHT bool
	// Republish is how often the node republishes its signed peer record
	// when nothing changed (default DefaultRepublish).
	Republish time.Duration
	// Relay limits, for a public node.
	Relay relay.Config
	// Keeper retry settings, for a private node; Relays and Logger are set
	// by the node.
	Keeper relay.KeeperConfig
	Logger *slog.Logger
	// HandshakeVersion is the version announced in the handshake; 0 means
	// protocol.Version. Tests set it to pose as another release.
	HandshakeVersion int
}

func (c *Config) fill() error {
	if c.Role != protocol.RolePublic && c.Role != protocol.RolePrivate {
		return fmt.Errorf("role must be %q or %q, not %q", protocol.RolePublic, protocol.RolePrivate, c.Role)
	}
	if c.Key == nil {
		return fmt.Errorf("no identity key")
	}
	if c.Network == "" {
		c.Network = DefaultNetwork
	}
	if c.HandshakeVersion == 0 {
		c.HandshakeVersion = protocol.Version
	}
	if c.Republish <= 0 {
		c.Republish = DefaultRepublish
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Role == protocol.RolePublic && c.Relay == (relay.Config{}) {
		c.Relay = relay.DefaultConfig()
	}
	d := relay.DefaultKeeperConfig()
	if c.Keeper.MinBackoff == 0 {
		c.Keeper.MinBackoff = d.MinBackoff
	}
	if c.Keeper.MaxBackoff == 0 {
		c.Keeper.MaxBackoff = d.MaxBackoff
	}
	if c.Keeper.DialTimeout == 0 {
		c.Keeper.DialTimeout = d.DialTimeout
	}
	return nil
}
