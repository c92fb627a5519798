package relay

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// KeeperConfig says which relays to hold reservations on and how hard to
// retry.
type KeeperConfig struct {
	// Relays are full relay addresses, ending in /p2p/<relay peer ID>.
	Relays []ma.Multiaddr
	// MinBackoff and MaxBackoff bound the wait between attempts after a
	// failure; the wait doubles from Min up to Max.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds one connect-and-reserve attempt.
	DialTimeout time.Duration
	// OnChange, if set, is called after the set of reservations changes.
	OnChange func()
	Logger   *slog.Logger
}

// DefaultKeeperConfig returns retry settings for a daemon: quick first
// retries, then at most one attempt every 30 s per relay.
func DefaultKeeperConfig() KeeperConfig {
	return KeeperConfig{MinBackoff: time.Second, MaxBackoff: 30 * time.Second, DialTimeout: 20 * time.Second}
}

// Reservation is a slot this node holds on a relay.
type Reservation struct {
	Relay   peer.ID
	Expires time.Time
	// Addrs are this node's relayed addresses through the relay.
	Addrs []ma.Multiaddr
}

// Keeper holds a reservation on each configured relay: it connects, reserves,
// renews before expiry, and after any loss reconnects with capped exponential
// backoff.
type Keeper struct {
	h      host.Host
	cfg    KeeperConfig
	log    *slog.Logger
	relays []peer.AddrInfo

	mu    sync.Mutex
	rsvps map[peer.ID]Reservation
	kicks map[peer.ID]chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
	notif  *network.NotifyBundle
}

// ParseRelays turns relay multiaddrs into peer infos, merging addresses of
// the same relay.
func ParseRelays(addrs []ma.Multiaddr) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, a := range addrs {
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return nil, fmt.Errorf("relay address %s: must end in /p2p/<peer ID>: %w", a, err)
		}
		i := slices.IndexFunc(out, func(o peer.AddrInfo) bool { return o.ID == ai.ID })
		if i < 0 {
			out = append(out, *ai)
		} else {
			out[i].Addrs = append(out[i].Addrs, ai.Addrs...)
		}
	}
	return out, nil
}

// NewKeeper returns a keeper for h. It does nothing until Start.
func NewKeeper(h host.Host, cfg KeeperConfig) (*Keeper, error) {
	relays, err := ParseRelays(cfg.Relays)
	if err != nil {
		return nil, err
	}
	d := DefaultKeeperConfig()
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = d.MinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(d.MaxBackoff, cfg.MinBackoff)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = d.DialTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	k := &Keeper{h: h, cfg: cfg, log: cfg.Logger, relays: relays,
		rsvps: make(map[peer.ID]Reservation), kicks: make(map[peer.ID]chan struct{})}
	for _, r := range relays {
		k.kicks[r.ID] = make(chan struct{}, 1)
	}
	return k, nil
}

// Relays returns the configured relays.
func (k *Keeper) Relays() []peer.AddrInfo { return slices.Clone(k.relays) }

// Start begins keeping reservations, one goroutine per relay.
func (k *Keeper) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	k.notif = &network.NotifyBundle{DisconnectedF: func(_ network.Network, c network.Conn) {
		k.kick(c.RemotePeer())
	}}
	k.h.Network().Notify(k.notif)
	for _, r := range k.relays {
		k.wg.Add(1)
		go func() {
			defer k.wg.Done()
			k.keep(ctx, r)
		}()
	}
}

// Close stops the keeper and waits for its goroutines.
func (k *Keeper) Close() {
	if k.cancel == nil {
		return
	}
	k.h.Network().StopNotify(k.notif)
	k.cancel()
	k.wg.Wait()
}

// Reservations returns the reservations held now, ordered by relay.
func (k *Keeper) Reservations() []Reservation {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]Reservation, 0, len(k.rsvps))
	for _, r := range k.rsvps {
		r.Addrs = slices.Clone(r.Addrs)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Reservation) int { return cmpID(a.Relay, b.Relay) })
	return out
}

// RelayedAddrs returns this node's relayed addresses through every relay it
// holds a reservation on.
func (k *Keeper) RelayedAddrs() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, r := range k.Reservations() {
		out = append(out, r.Addrs...)
	}
	return out
}

func (k *Keeper) kick(p peer.ID) {
	ch, ok := k.kicks[p]
	if !ok {
		return
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

// keep is the loop for one relay.
func (k *Keeper) keep(ctx context.Context, r peer.AddrInfo) {
	backoff := k.cfg.MinBackoff
	failures := 0
	for {
		rsvp, err := k.reserve(ctx, r)
		if ctx.Err() != nil {
			k.drop(r.ID)
			return
		}
		var wait time.Duration
		if err != nil {
			k.drop(r.ID)
			failures++
			wait = jitter(backoff)
			backoff = min(2*backoff, k.cfg.MaxBackoff)
			k.log.Warn("relay unreachable, retrying", "relay", r.ID, "attempt", failures,
				"retry_in", wait.Round(time.Millisecond), "err", err)
		} else {
			if failures > 0 || !k.has(r.ID) {
				k.log.Info("reserved on relay", "relay", r.ID, "expires", rsvp.Expires.Format(time.RFC3339))
			}
			failures, backoff = 0, k.cfg.MinBackoff
			k.store(rsvp)
			// Renew halfway to expiry: time to retry before it lapses.
			wait = max(time.Until(rsvp.Expires)/2, 500*time.Millisecond)
		}
		if !k.sleep(ctx, r.ID, wait, err == nil) {
			k.drop(r.ID)
			return
		}
	}
}

// sleep waits for d, or until the relay disconnects while a reservation is
// held. It returns false when ctx is done.
func (k *Keeper) sleep(ctx context.Context, id peer.ID, d time.Duration, held bool) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-k.kicks[id]:
			if held && k.h.Network().Connectedness(id) != network.Connected {
				k.log.Warn("lost connection to relay, reconnecting", "relay", id)
				k.drop(id)
				return true
			}
		}
	}
}

// reserve connects to the relay over the configured addresses only (so a
// /ws address is dialed as WebSocket) and takes a reservation.
func (k *Keeper) reserve(ctx context.Context, r peer.AddrInfo) (Reservation, error) {
	ctx, cancel := context.WithTimeout(ctx, k.cfg.DialTimeout)
	defer cancel()
	if k.h.Network().Connectedness(r.ID) != network.Connected {
		k.h.Peerstore().ClearAddrs(r.ID)
		// Our own backoff paces retries; the swarm's would add minutes.
		dctx := network.WithForceDirectDial(ctx, "relay reservation")
		if err := k.h.Connect(dctx, r); err != nil {
			return Reservation{}, fmt.Errorf("connect: %w", err)
		}
	}
	res, err := client.Reserve(ctx, k.h, peer.AddrInfo{ID: r.ID})
	if err != nil {
		return Reservation{}, fmt.Errorf("reserve: %w", err)
	}
	return Reservation{Relay: r.ID, Expires: res.Expiration, Addrs: circuitAddrs(r)}, nil
}

// circuitAddrs builds <relay addr>/p2p/<relay>/p2p-circuit from the relay
// addresses this node was configured with. The relay's own announced list
// is left out: it holds every interface it has (loopback, networks the
// dialer cannot reach), and every dead address advertised costs a dialing
// peer a relay dial timeout.
func circuitAddrs(r peer.AddrInfo) []ma.Multiaddr {
	suffix := ma.StringCast("/p2p/" + r.ID.String() + "/p2p-circuit")
	var out []ma.Multiaddr
	seen := map[string]bool{}
	for _, a := range r.Addrs {
		a, _ = ma.SplitFunc(a, func(c ma.Component) bool { return c.Code() == ma.P_P2P })
		if a == nil || seen[a.String()] {
			continue
		}
		seen[a.String()] = true
		out = append(out, a.Encapsulate(suffix))
	}
	return out
}

func (k *Keeper) has(id peer.ID) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.rsvps[id]
	return ok
}

func (k *Keeper) store(r Reservation) {
	k.mu.Lock()
	old, had := k.rsvps[r.Relay]
	k.rsvps[r.Relay] = r
	k.mu.Unlock()
	if !had || !slices.EqualFunc(old.Addrs, r.Addrs, ma.Multiaddr.Equal) {
		k.changed()
	}
}

func (k *Keeper) drop(id peer.ID) {
	k.mu.Lock()
	_, had := k.rsvps[id]
	delete(k.rsvps, id)
	k.mu.Unlock()
	if had {
		k.changed()
	}
}

func (k *Keeper) changed() {
	if k.cfg.OnChange != nil {
		k.cfg.OnChange()
	}
}

func jitter(d time.Duration) time.Duration {
	return d - d/5 + time.Duration(rand.Int64N(int64(d)/5*2+1))
}

func cmpID(a, b peer.ID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
