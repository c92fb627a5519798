package node

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/dht"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay/client"
)

// ErrNotFound means a DHT lookup found no address for the peer.
var ErrNotFound = dht.ErrNotFound

// startDHT joins the DHT (node/dht) unless DisableDHT.
func (n *Node) startDHT() error {
	if n.cfg.DisableDHT {
		return nil
	}
	boot, err := client.ParseRelays(append(append([]ma.Multiaddr{}, n.cfg.Relays...), n.cfg.Bootstrap...))
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	d, err := dht.New(n.host, dht.Config{Server: n.cfg.Role == protocol.RolePublic, Network: n.cfg.Network,
		Key: n.cfg.Key, Bootstrap: boot, Republish: n.cfg.Republish, Addrs: n.recordAddrs, Logger: n.log})
	if err != nil {
		return err
	}
	n.dht = d
	return nil
}

// recordAddrs are the addresses a peer record carries: relayed ones first,
// as they are what makes a private node reachable.
func (n *Node) recordAddrs() []ma.Multiaddr {
	return capAddrs(append(n.RelayedAddrs(), n.DirectAddrs()...))
}

// Published reports how many times this node has published its peer record.
func (n *Node) Published() int64 {
	if n.dht == nil {
		return 0
	}
	return n.dht.Published()
}

// FindPeer looks id up in the DHT. Found addresses go to the peerstore and
// to the right book of the peer book.
func (n *Node) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	if n.dht == nil {
		return peer.AddrInfo{}, fmt.Errorf("%w: DHT disabled", ErrNotFound)
	}
	ai, err := n.dht.FindPeer(ctx, id)
	if err != nil {
		return ai, err
	}
	n.host.Peerstore().AddAddrs(id, ai.Addrs, peerstore.AddressTTL)
	n.book.Update(id, func(p *book.PeerInfo) {
		p.MergeAddrs(ai.Addrs)
		if p.State == "" {
			p.State = book.StateDiscovered
		}
	})
	return ai, nil
}

// RoutingTable returns the peers in the node's DHT routing table.
func (n *Node) RoutingTable() []peer.ID {
	if n.dht == nil {
		return nil
	}
	return n.dht.RoutingTable()
}
