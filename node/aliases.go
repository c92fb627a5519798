package node

import (
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node/config"
	"github.com/overlay-net/overlay/node/status"
	"github.com/overlay-net/overlay/protocol"
)

// The node's configuration lives in node/config and its status in
// node/status; these names keep them where callers have always found them.
type (
	// Config is everything a node needs (config.Config).
	Config = config.Config
	// Status is what a node says about itself (status.Status).
	Status = status.Status
	// StatusAddrs are the node's own addresses (status.Addrs).
	StatusAddrs = status.Addrs
	// StatusReservation is one relay reservation held (status.Reservation).
	StatusReservation = status.Reservation
)

// DefaultNetwork is the network name a node joins unless told otherwise.
const DefaultNetwork = config.DefaultNetwork

// DefaultRelayedGrace is how long a relayed connection to a peer that is
// also reached directly may sit idle before it is closed.
const DefaultRelayedGrace = config.DefaultRelayedGrace

// DefaultRepublish is how often a node republishes its peer record.
const DefaultRepublish = config.DefaultRepublish

// Agent is the agent version a node announces.
const Agent = config.Agent

// DefaultRelayListen and DefaultPeerListen are the default listen
// addresses of a public and of a private node: copies of config's, which
// DefaultConfig reads.
var (
	DefaultRelayListen = config.DefaultRelayListen
	DefaultPeerListen  = config.DefaultPeerListen
)

// DefaultConfig returns the configuration of a node of role with every
// default set (config.DefaultConfig).
func DefaultConfig(role protocol.Role) Config { return config.DefaultConfig(role) }

// IsQUIC reports whether a is a QUIC address (config.IsQUIC).
func IsQUIC(a ma.Multiaddr) bool { return config.IsQUIC(a) }
