package node

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/internal/backoff"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
)

// lookupTimeout bounds one DHT lookup made on behalf of Connect.
const lookupTimeout = 20 * time.Second

// DHTPrefix is the DHT protocol prefix of a network: nodes of two networks,
// or of the public IPFS DHT, never speak each other's DHT protocol.
func DHTPrefix(network string) libp2pproto.ID {
	return libp2pproto.ID("/overlay/" + url.PathEscape(network))
}

// ErrNotFound means a DHT lookup found no address for the peer.
var ErrNotFound = errors.New("not found in the DHT")

func (n *Node) startDHT() error {
	mode := dht.ModeClient
	if n.cfg.Role == protocol.RolePublic {
		mode = dht.ModeServer
	}
	boot, err := n.bootstrapPeers()
	if err != nil {
		return err
	}
	d, err := dht.New(n.host,
		dht.Mode(mode),
		dht.ProtocolPrefix(DHTPrefix(n.cfg.Network)),
		dht.Validator(record.NamespacedValidator{protocol.PeerRecordNamespace: protocol.PeerRecordValidator{}}),
		dht.BootstrapPeers(boot...),
		dht.DisableProviders(),
	)
	if err != nil {
		return fmt.Errorf("start DHT: %w", err)
	}
	n.dht = d
	for _, b := range boot {
		n.goRun(func() { n.bootstrapFrom(b) })
	}
	n.goRun(n.publishLoop)
	return nil
}

// bootstrapPeers are the configured relays and --bootstrap addresses.
func (n *Node) bootstrapPeers() ([]peer.AddrInfo, error) {
	all := append(append([]ma.Multiaddr{}, n.cfg.Relays...), n.cfg.Bootstrap...)
	infos, err := relay.ParseRelays(all)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return infos, nil
}

// bootstrapFrom connects to one bootstrap peer, retrying with capped
// backoff, then refreshes the routing table so that the DHT learns the
// network beyond it.
func (n *Node) bootstrapFrom(b peer.AddrInfo) {
	bo := backoff.New(time.Second, 30*time.Second)
	for {
		ctx, cancel := context.WithTimeout(n.ctx, 20*time.Second)
		err := n.host.Connect(network.WithForceDirectDial(ctx, "bootstrap"), b)
		cancel()
		if err == nil {
			select {
			case <-n.dht.RefreshRoutingTable():
			case <-n.ctx.Done():
			}
			return
		}
		n.log.Debug("bootstrap peer unreachable", "peer", b.ID, "err", err)
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(bo.Delay()):
		}
	}
}

// addrsChanged asks the publish loop to republish now.
func (n *Node) addrsChanged() {
	select {
	case n.republish <- struct{}{}:
	default:
	}
}

// publishLoop keeps this node's signed peer record in the DHT fresh: at
// once after its addresses change, every Republish interval otherwise, and
// with backoff while publishing fails.
func (n *Node) publishLoop() {
	bo := backoff.New(time.Second, 30*time.Second)
	for {
		wait := n.cfg.Republish
		if addrs := n.recordAddrs(); len(addrs) > 0 {
			if err := n.publish(addrs); err != nil {
				n.log.Debug("publish peer record", "err", err)
				wait = bo.Delay()
			} else {
				bo.Reset()
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-n.republish:
		case <-time.After(wait):
		}
	}
}

// recordAddrs are the addresses a peer record carries: relayed ones first,
// as they are what makes a private node reachable.
func (n *Node) recordAddrs() []ma.Multiaddr {
	return capAddrs(append(n.RelayedAddrs(), n.DirectAddrs()...))
}

func (n *Node) publish(addrs []ma.Multiaddr) error {
	rec, err := protocol.SealPeerRecord(n.cfg.Key, addrs)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	defer cancel()
	if err := n.dht.PutValue(ctx, protocol.PeerRecordKey(n.ID()), rec); err != nil {
		return fmt.Errorf("put peer record: %w", err)
	}
	n.published.Add(1)
	return nil
}

// Published reports how many times this node has published its peer record.
func (n *Node) Published() int64 { return n.published.Load() }

// FindPeer looks id up in the DHT: its signed peer record first (it carries
// relayed addresses), then a plain peer lookup. Found addresses go to the
// peerstore and to the right book of the peer book.
func (n *Node) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	if n.dht == nil {
		return peer.AddrInfo{}, fmt.Errorf("%w: DHT disabled", ErrNotFound)
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	ai, err := n.findRecord(ctx, id)
	if err != nil {
		if ai, err = n.dht.FindPeer(ctx, id); err != nil {
			return peer.AddrInfo{}, fmt.Errorf("%w: %s: %v", ErrNotFound, id, err)
		}
	}
	if len(ai.Addrs) == 0 {
		return peer.AddrInfo{}, fmt.Errorf("%w: %s has no addresses", ErrNotFound, id)
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

func (n *Node) findRecord(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	key := protocol.PeerRecordKey(id)
	v, err := n.dht.GetValue(ctx, key)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	ai, _, err := protocol.OpenPeerRecord(key, v)
	return ai, err
}

// RoutingTable returns the peers in the node's DHT routing table.
func (n *Node) RoutingTable() []peer.ID {
	if n.dht == nil {
		return nil
	}
	return n.dht.RoutingTable().ListPeers()
}
