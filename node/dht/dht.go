// Package dht keeps a node in its network's kad-DHT: it joins through the
// bootstrap peers, publishes the node's signed peer record (at once when the
// node's relayed addresses change, read from events.EvtRelay, and every
// Republish otherwise) and looks peers up by ID.
package dht

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	kad "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/internal/backoff"
	"github.com/overlay-net/overlay/protocol"
)

// lookupTimeout bounds one lookup.
const lookupTimeout = 20 * time.Second

// ErrNotFound means a lookup found no address for the peer.
var ErrNotFound = errors.New("not found in the DHT")

// Prefix is the DHT protocol prefix of a network: nodes of two networks,
// or of the public IPFS DHT, never speak each other's DHT protocol.
func Prefix(network string) libp2pproto.ID {
	return libp2pproto.ID("/overlay/" + url.PathEscape(network))
}

// Config is what the DHT needs of its node.
type Config struct {
	// Server makes this node answer DHT queries (public nodes).
	Server    bool
	Network   string
	Key       crypto.PrivKey
	Bootstrap []peer.AddrInfo
	// Republish is how often the record is published when nothing changed.
	Republish time.Duration
	// Addrs returns the addresses the peer record carries now.
	Addrs  func() []ma.Multiaddr
	Logger *slog.Logger
}

// DHT is a node's place in the DHT. Close stops it.
type DHT struct {
	h         host.Host
	cfg       Config
	d         *kad.IpfsDHT
	republish chan struct{}
	published atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New joins the DHT on h and starts publishing.
func New(h host.Host, cfg Config) (*DHT, error) {
	mode := kad.ModeClient
	if cfg.Server {
		mode = kad.ModeServer
	}
	d, err := kad.New(h,
		kad.Mode(mode),
		kad.ProtocolPrefix(Prefix(cfg.Network)),
		kad.Validator(record.NamespacedValidator{protocol.PeerRecordNamespace: protocol.PeerRecordValidator{}}),
		kad.BootstrapPeers(cfg.Bootstrap...),
		kad.DisableProviders(),
	)
	if err != nil {
		return nil, fmt.Errorf("start DHT: %w", err)
	}
	sub, err := h.EventBus().Subscribe(new(events.EvtRelay), eventbus.BufSize(64))
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("DHT: watch relay events: %w", err)
	}
	x := &DHT{h: h, cfg: cfg, d: d, republish: make(chan struct{}, 1)}
	x.ctx, x.cancel = context.WithCancel(context.Background())
	for _, b := range cfg.Bootstrap {
		x.goRun(func() { x.bootstrapFrom(b) })
	}
	x.goRun(func() { x.watch(sub) })
	x.goRun(x.publishLoop)
	return x, nil
}

func (x *DHT) goRun(fn func()) {
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		fn()
	}()
}

// Close stops publishing and leaves the DHT.
func (x *DHT) Close() error {
	x.cancel()
	x.wg.Wait()
	return x.d.Close()
}

// bootstrapFrom connects to one bootstrap peer, retrying with capped
// backoff, then refreshes the routing table so that the DHT learns the
// network beyond it.
func (x *DHT) bootstrapFrom(b peer.AddrInfo) {
	bo := backoff.New(time.Second, 30*time.Second)
	for {
		ctx, cancel := context.WithTimeout(x.ctx, 20*time.Second)
		err := x.h.Connect(network.WithForceDirectDial(ctx, "bootstrap"), b)
		cancel()
		if err == nil {
			select {
			case <-x.d.RefreshRoutingTable():
			case <-x.ctx.Done():
			}
			return
		}
		x.cfg.Logger.Debug("bootstrap peer unreachable", "peer", b.ID, "err", err)
		select {
		case <-x.ctx.Done():
			return
		case <-time.After(bo.Delay()):
		}
	}
}

// watch asks for a republish whenever a reservation is gained or lost: the
// record's relayed addresses change with it.
func (x *DHT) watch(sub event.Subscription) {
	defer sub.Close()
	for {
		select {
		case <-x.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			if ev := e.(events.EvtRelay); ev.Gained() || ev.Lost() {
				select {
				case x.republish <- struct{}{}:
				default:
				}
			}
		}
	}
}

// publishLoop keeps this node's signed peer record in the DHT fresh: at
// once after its addresses change, every Republish interval otherwise, and
// with backoff while publishing fails.
func (x *DHT) publishLoop() {
	bo := backoff.New(time.Second, 30*time.Second)
	for {
		wait := x.cfg.Republish
		if addrs := x.cfg.Addrs(); len(addrs) > 0 {
			if err := x.publish(addrs); err != nil {
				x.cfg.Logger.Debug("publish peer record", "err", err)
				wait = bo.Delay()
			} else {
				bo.Reset()
			}
		}
		select {
		case <-x.ctx.Done():
			return
		case <-x.republish:
		case <-time.After(wait):
		}
	}
}

func (x *DHT) publish(addrs []ma.Multiaddr) error {
	rec, err := protocol.SealPeerRecord(x.cfg.Key, addrs)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(x.ctx, 30*time.Second)
	defer cancel()
	if err := x.d.PutValue(ctx, protocol.PeerRecordKey(x.h.ID()), rec); err != nil {
		return fmt.Errorf("put peer record: %w", err)
	}
	x.published.Add(1)
	return nil
}

// Published reports how many times the peer record was published.
func (x *DHT) Published() int64 { return x.published.Load() }

// FindPeer looks id up: its signed peer record first (it carries relayed
// addresses), then a plain peer lookup.
func (x *DHT) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	ai, err := x.findRecord(ctx, id)
	if err != nil {
		if ai, err = x.d.FindPeer(ctx, id); err != nil {
			return peer.AddrInfo{}, fmt.Errorf("%w: %s: %v", ErrNotFound, id, err)
		}
	}
	if len(ai.Addrs) == 0 {
		return peer.AddrInfo{}, fmt.Errorf("%w: %s has no addresses", ErrNotFound, id)
	}
	return ai, nil
}

func (x *DHT) findRecord(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	key := protocol.PeerRecordKey(id)
	v, err := x.d.GetValue(ctx, key)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	ai, _, err := protocol.OpenPeerRecord(key, v)
	return ai, err
}

// RoutingTable returns the peers in the routing table.
func (x *DHT) RoutingTable() []peer.ID { return x.d.RoutingTable().ListPeers() }
