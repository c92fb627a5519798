// Package client holds a private node's relay reservations: the keeper that
// reserves, renews and reconnects, the standing it reports per relay, and the
// relayed addresses the reservations give. It is the client side of
// relay/, and like relay/ depends on nothing under node/.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	circuitclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/internal/backoff"
	"github.com/overlay-net/overlay/relay/liveness"
)

// ErrRefused marks an Admission error that means the relay refused this
// node (its handshake said no), as opposed to a handshake that did not end.
var ErrRefused = errors.New("refused this node")

// Admission tells the keeper whether a relay it connected to admitted this
// node. AwaitHandshake returns nil for a member or a stock (foreign) relay,
// an error wrapping ErrRefused when the relay refused this node.
type Admission interface {
	AwaitHandshake(ctx context.Context, relay peer.ID) error
}

// Config says which relays to hold reservations on and how hard to
// retry. Start from DefaultConfig: New refuses zero durations
// rather than guess what was meant.
type Config struct {
	// Relays are full relay addresses, ending in /p2p/<relay peer ID>.
	Relays []ma.Multiaddr
	// MinBackoff and MaxBackoff bound the wait between attempts after a
	// failure; the wait doubles from Min up to Max.
	MinBackoff, MaxBackoff time.Duration
	// FastRetry is the wait between attempts during FastWindow after a
	// held reservation is lost, so that a restarted relay is reserved on
	// again within about FastRetry of listening.
	FastRetry, FastWindow time.Duration
	// DialTimeout bounds one connect-and-reserve attempt.
	DialTimeout time.Duration
	// Admission, if set, is asked after each connect whether the relay
	// admitted this node.
	Admission Admission
	Logger    *slog.Logger
	// Liveness pings each direct connection to a relay and closes one
	// that stalls (relay/liveness), so that the keeper reconnects on a
	// fresh connection; a zero Interval turns it off.
	Liveness liveness.Config
}

// DefaultConfig returns retry settings for a daemon: quick first
// retries, then at most one attempt every 30 s per relay; after losing a
// relay, an attempt every 300 ms for 30 s, since most losses are restarts
// that end within seconds.
func DefaultConfig() Config {
	return Config{MinBackoff: time.Second, MaxBackoff: 30 * time.Second,
		FastRetry: 300 * time.Millisecond, FastWindow: 30 * time.Second, DialTimeout: 20 * time.Second,
		Liveness: liveness.DefaultConfig()}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case len(c.Relays) == 0:
		return errors.New("keeper: no relays")
	case c.MinBackoff <= 0:
		return fmt.Errorf("keeper: shortest retry wait must be positive, not %s", c.MinBackoff)
	case c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("keeper: longest retry wait %s is below the shortest, %s", c.MaxBackoff, c.MinBackoff)
	case c.FastRetry <= 0 || c.FastWindow < 0:
		return fmt.Errorf("keeper: fast retry wait must be positive and its window not negative (%s, %s)", c.FastRetry, c.FastWindow)
	case c.DialTimeout <= 0:
		return fmt.Errorf("keeper: dial timeout must be positive, not %s", c.DialTimeout)
	}
	if err := c.Liveness.Validate(); err != nil {
		return fmt.Errorf("keeper: %w", err)
	}
	_, err := ParseRelays(c.Relays)
	return err
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
// backoff. Every change of its standing with a relay is emitted on the host's
// event bus as an events.EvtRelay.
type Keeper struct {
	h      host.Host
	cfg    Config
	log    *slog.Logger
	relays []peer.AddrInfo
	em     event.Emitter

	mu    sync.Mutex
	rsvps map[peer.ID]Reservation
	last  map[peer.ID]events.EvtRelay // the last event per relay
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

// New returns a keeper for h. It does nothing until Start.
func New(h host.Host, cfg Config) (*Keeper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	relays, _ := ParseRelays(cfg.Relays)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	em, err := h.EventBus().Emitter(new(events.EvtRelay))
	if err != nil {
		return nil, fmt.Errorf("relay event emitter: %w", err)
	}
	k := &Keeper{h: h, cfg: cfg, log: cfg.Logger, relays: relays, em: em,
		rsvps: make(map[peer.ID]Reservation), last: make(map[peer.ID]events.EvtRelay),
		kicks: make(map[peer.ID]chan struct{})}
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
		// Our relays are the node's lifeline: never trimmed.
		k.h.ConnManager().Protect(r.ID, "overlay-relay")
		k.wg.Add(2)
		go func() {
			defer k.wg.Done()
			k.keep(ctx, r)
		}()
		go func() {
			defer k.wg.Done()
			liveness.Watch(ctx, k.h, r.ID, k.cfg.Liveness, k.log)
		}()
	}
}

// Close stops the keeper and waits for its goroutines.
func (k *Keeper) Close() {
	if k.cancel != nil {
		k.h.Network().StopNotify(k.notif)
		k.cancel()
		k.wg.Wait()
	}
	k.em.Close()
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
	bo := backoff.New(k.cfg.MinBackoff, k.cfg.MaxBackoff)
	var lostAt time.Time   // when a held reservation was last lost
	var took time.Duration // how long the last successful attempt took
	cuts := 0              // attempts in a row cut by the fast-window cap
	k.set(events.EvtRelay{Relay: r.ID, State: events.RelayConnecting})
	defer k.drop(r.ID)
	for {
		fast := time.Since(lostAt) < k.cfg.FastWindow
		timeout := k.cfg.DialTimeout
		if fast {
			// An attempt against a relay that is down can hang (a DNS name
			// that no longer resolves waits out the resolver, 5 s): cut it
			// so that the next one, after the relay is back, comes soon.
			// Three times what a good attempt took leaves slow links room,
			// and the cap doubles with each attempt it cut, so a relay
			// slow to answer (a loaded machine) is still reached.
			timeout = min(timeout, max(500*time.Millisecond, 3*took)<<min(cuts, 6))
		}
		start := time.Now()
		rsvp, err := k.reserve(ctx, r, timeout)
		if ctx.Err() != nil {
			return
		}
		if fast && err != nil && time.Since(start) >= timeout {
			cuts++
		} else {
			cuts = 0
		}
		var wait time.Duration
		if err != nil {
			wait = bo.Delay()
			if fast && !errors.Is(err, ErrRefused) {
				wait = fastJitter(k.cfg.FastRetry)
			}
			k.failed(r.ID, err, wait)
		} else {
			took = time.Since(start)
			bo.Reset()
			k.store(rsvp)
			// Renew halfway to expiry: time to retry before it lapses.
			wait = max(time.Until(rsvp.Expires)/2, 500*time.Millisecond)
		}
		if lost, ok := k.sleep(ctx, r.ID, wait, err == nil); !ok {
			return
		} else if lost {
			lostAt = time.Now()
		}
	}
}

// sleep waits for d, or until the relay disconnects while a reservation is
// held (lost). ok is false when ctx is done.
func (k *Keeper) sleep(ctx context.Context, id peer.ID, d time.Duration, held bool) (lost, ok bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, false
		case <-t.C:
			return false, true
		case <-k.kicks[id]:
			if held && k.h.Network().Connectedness(id) != network.Connected {
				k.log.Warn("lost connection to relay, reconnecting", "relay", id)
				k.drop(id)
				k.set(events.EvtRelay{Relay: id, State: events.RelayConnecting, Reason: "connection lost"})
				return true, true
			}
		}
	}
}

// reserve connects to the relay over the configured addresses only (so a
// /ws address is dialed as WebSocket), waits for the relay's verdict on this
// node, and takes a reservation.
func (k *Keeper) reserve(ctx context.Context, r peer.AddrInfo, timeout time.Duration) (Reservation, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if k.h.Network().Connectedness(r.ID) != network.Connected {
		k.h.Peerstore().ClearAddrs(r.ID)
		// Our own backoff paces retries; the swarm's would add minutes.
		dctx := network.WithForceDirectDial(ctx, "relay reservation")
		if err := k.h.Connect(dctx, r); err != nil {
			return Reservation{}, fmt.Errorf("connect: %w", err)
		}
	}
	if k.cfg.Admission != nil {
		if err := k.cfg.Admission.AwaitHandshake(ctx, r.ID); err != nil {
			return Reservation{}, err
		}
	}
	res, err := circuitclient.Reserve(ctx, k.h, peer.AddrInfo{ID: r.ID})
	if err != nil {
		var re circuitclient.ReservationError
		if errors.As(err, &re) && re.Status == pbv2.Status_PERMISSION_DENIED {
			// The relay judged this node on this connection: having taken
			// it for a stranger (a handshake it never saw), it would refuse
			// every attempt for as long as the connection lasts. The next
			// attempt connects afresh and runs the handshake again.
			_ = k.h.Network().ClosePeer(r.ID)
		}
		if errors.As(err, &re) && re.Status != pbv2.Status_CONNECTION_FAILED {
			return Reservation{}, fmt.Errorf("%w: the relay refused the reservation: %s", ErrRefused, pbv2.Status_name[int32(re.Status)])
		}
		return Reservation{}, fmt.Errorf("reserve: %w", err)
	}
	return Reservation{Relay: r.ID, Expires: res.Expiration, Addrs: circuitAddrs(r)}, nil
}

func (k *Keeper) store(r Reservation) {
	k.mu.Lock()
	_, had := k.rsvps[r.Relay]
	k.rsvps[r.Relay] = r
	k.mu.Unlock()
	if !had {
		k.log.Info("reserved on relay", "relay", r.Relay, "expires", r.Expires.Format(time.RFC3339))
	}
	k.set(events.EvtRelay{Relay: r.Relay, State: events.RelayReserved, Expires: r.Expires, Addrs: r.Addrs})
}

// failed records a failed attempt: one log line when the standing changes
// (or the refusal's reason does), debug otherwise, so a long outage does
// not flood the log.
func (k *Keeper) failed(id peer.ID, err error, wait time.Duration) {
	k.drop(id)
	err = explainSecurity(err)
	ev := events.EvtRelay{Relay: id, State: events.RelayUnreachable, Reason: err.Error(), NextRetry: time.Now().Add(wait)}
	if errors.Is(err, ErrRefused) {
		ev.State = events.RelayRefused
	}
	prev, prevReason := k.set(ev)
	retry := wait.Round(time.Millisecond)
	switch {
	case prev == ev.State && prevReason == ev.Reason:
		k.log.Debug("relay attempt failed", "relay", id, "state", ev.State, "retry_in", retry, "err", err)
	case ev.State == events.RelayRefused:
		k.log.Warn("relay refused this node", "relay", id, "reason", ev.Reason, "retry_in", retry)
	default:
		k.log.Warn("relay unreachable, retrying", "relay", id, "retry_in", retry, "err", err)
	}
}

// explainSecurity words a failed security handshake: between nodes with
// different pre-shared keys (or one without), libp2p sees only garbage or
// silence and says no more than this.
func explainSecurity(err error) error {
	if !strings.Contains(err.Error(), "failed to negotiate security protocol") {
		return err
	}
	return fmt.Errorf("%w (a private network? both sides need the same pre-shared key, --psk)", err)
}

// set records and emits the relay's new standing and returns the previous
// state and reason.
func (k *Keeper) set(ev events.EvtRelay) (events.RelayState, string) {
	k.mu.Lock()
	prev := k.last[ev.Relay]
	ev.Prev = prev.State
	k.last[ev.Relay] = ev
	k.mu.Unlock()
	_ = k.em.Emit(ev)
	return prev.State, prev.Reason
}

func (k *Keeper) drop(id peer.ID) {
	k.mu.Lock()
	delete(k.rsvps, id)
	k.mu.Unlock()
}

// fastJitter spreads fast retries of many peers over ±20% of d.
func fastJitter(d time.Duration) time.Duration {
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
