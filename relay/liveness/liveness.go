// Package liveness notices connections that stall without breaking. A TCP
// connection whose path is cut and then restored (a container taken off its
// network, a Wi-Fi roam, a NAT that forgot and relearned the mapping) is
// not closed by either side: the data queued during the cut waits for
// TCP's retransmission timer, which doubles on each loss, so the
// connection can stay silent for tens of seconds after the path is back.
// Everything multiplexed on it (relay circuits, gossipsub streams) stalls
// with it. A ping on that very connection with a deadline tells a live
// connection from a stalled one; closing the stalled one lets the node
// dial a fresh connection, which does not inherit the backoff.
//
// Two users: Watch, run by a private node's reservation keeper on its
// connections to each relay (the node's lifeline); and Doubter, run by
// any node, which probes a peer's older connections once when the peer
// opens a new one (a client that reconnects has usually given up on the
// old one, which the relay's side may still think alive).
package liveness

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	msmux "github.com/multiformats/go-multistream"
)

// Config says how often to ping and when to give up on a connection.
type Config struct {
	// Interval is the wait between two pings of a connection that
	// answered; 0 turns the watch off.
	Interval time.Duration
	// Timeout bounds one ping, stream negotiation included.
	Timeout time.Duration
	// Misses is how many pings in a row may fail before the connection
	// is closed; a failed ping is retried at once.
	Misses int
}

// DefaultConfig pings every 2 s and closes a connection after two pings
// of 3 s each went unanswered: a stall is noticed within about 8 s, and a
// loaded machine's pauses of a second or two do not close a good
// connection.
func DefaultConfig() Config {
	return Config{Interval: 2 * time.Second, Timeout: 3 * time.Second, Misses: 2}
}

// Validate reports a setting that cannot work. A zero Interval is valid
// (off).
func (c Config) Validate() error {
	switch {
	case c.Interval < 0:
		return fmt.Errorf("liveness: ping interval must not be negative, not %s", c.Interval)
	case c.Interval == 0:
		return nil
	case c.Timeout <= 0:
		return fmt.Errorf("liveness: ping timeout must be positive, not %s", c.Timeout)
	case c.Misses < 1:
		return fmt.Errorf("liveness: misses before closing must be at least 1, not %d", c.Misses)
	}
	return nil
}

// ErrMismatch means the peer answered a ping with other bytes.
var ErrMismatch = errors.New("ping answer differs")

// Ping sends one libp2p ping (/ipfs/ping/1.0.0, which every libp2p host
// serves by default) on c itself, not on whichever connection the host
// would pick, and returns the round trip. It gives up at ctx's deadline.
func Ping(ctx context.Context, c network.Conn) (time.Duration, error) {
	s, err := c.NewStream(ctx)
	if err != nil {
		return 0, fmt.Errorf("open stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	start := time.Now()
	if err := msmux.SelectProtoOrFail(ping.ID, s); err != nil {
		_ = s.Reset()
		return 0, fmt.Errorf("negotiate ping: %w", err)
	}
	_ = s.SetProtocol(ping.ID)
	buf := make([]byte, 2*ping.PingSize)
	_, _ = rand.Read(buf[:ping.PingSize])
	if _, err := s.Write(buf[:ping.PingSize]); err != nil {
		_ = s.Reset()
		return 0, fmt.Errorf("write ping: %w", err)
	}
	if _, err := io.ReadFull(s, buf[ping.PingSize:]); err != nil {
		_ = s.Reset()
		return 0, fmt.Errorf("read pong: %w", err)
	}
	rtt := time.Since(start)
	_ = s.Close()
	if !bytes.Equal(buf[:ping.PingSize], buf[ping.PingSize:]) {
		return rtt, ErrMismatch
	}
	return rtt, nil
}

// Watch pings every direct connection to p every cfg.Interval and closes
// one after cfg.Misses failed pings in a row, until ctx ends. It returns
// at once if cfg.Interval is 0. Relayed (limited) connections to p are
// left alone: they ride on another connection, which is watched there.
func Watch(ctx context.Context, h host.Host, p peer.ID, cfg Config, log *slog.Logger) {
	if cfg.Interval <= 0 {
		return
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	misses := map[network.Conn]int{}
	t := time.NewTimer(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		seen := map[network.Conn]bool{}
		for _, c := range h.Network().ConnsToPeer(p) {
			if c.Stat().Limited || c.IsClosed() {
				continue
			}
			seen[c] = true
			for misses[c] < cfg.Misses {
				pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
				_, err := Ping(pctx, c)
				cancel()
				if ctx.Err() != nil {
					return
				}
				if err == nil {
					misses[c] = 0
					break
				}
				misses[c]++
				log.Debug("relay connection missed a ping", "relay", p, "misses", misses[c], "err", err)
			}
			if misses[c] >= cfg.Misses {
				log.Warn("relay connection stalled, closing it", "relay", p, "addr", c.RemoteMultiaddr(),
					"misses", misses[c])
				_ = c.Close()
			}
		}
		for c := range misses {
			if !seen[c] {
				delete(misses, c)
			}
		}
		t.Reset(cfg.Interval)
	}
}

// DoubtTimeout is how long a Doubter waits for a ping on a peer's older
// connection: shorter than a Watch's, as the peer's reconnecting already
// says the old one is likely dead, and the sooner it closes the sooner
// what this side multiplexed on it moves to the new one.
const DoubtTimeout = 1500 * time.Millisecond

// Doubter probes a peer's older direct connections when the peer opens a
// new one, and closes those that do not answer a ping within its timeout.
type Doubter struct {
	h       host.Host
	timeout time.Duration
	log     *slog.Logger
	notif   *network.NotifyBundle

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	busy   map[peer.ID]bool // a probe of the peer runs
}

// NewDoubter starts watching h's new connections. Close stops it.
func NewDoubter(h host.Host, timeout time.Duration, log *slog.Logger) *Doubter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Doubter{h: h, timeout: timeout, log: log, ctx: ctx, cancel: cancel, busy: map[peer.ID]bool{}}
	d.notif = &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) { d.connected(c) }}
	h.Network().Notify(d.notif)
	return d
}

func (d *Doubter) connected(c network.Conn) {
	if c.Stat().Limited {
		return
	}
	p := c.RemotePeer()
	var older []network.Conn
	for _, o := range d.h.Network().ConnsToPeer(p) {
		if o != c && !o.Stat().Limited && !o.IsClosed() && o.Stat().Opened.Before(c.Stat().Opened) {
			older = append(older, o)
		}
	}
	if len(older) == 0 || d.ctx.Err() != nil {
		return
	}
	d.mu.Lock()
	if d.busy[p] {
		d.mu.Unlock()
		return
	}
	d.busy[p] = true
	d.wg.Add(1)
	d.mu.Unlock()
	go func() {
		defer d.wg.Done()
		defer func() {
			d.mu.Lock()
			delete(d.busy, p)
			d.mu.Unlock()
		}()
		for _, o := range older {
			ctx, cancel := context.WithTimeout(d.ctx, d.timeout)
			_, err := Ping(ctx, o)
			cancel()
			if err != nil && d.ctx.Err() == nil {
				d.log.Info("peer reconnected and its older connection does not answer, closing it",
					"peer", p, "addr", o.RemoteMultiaddr(), "err", err)
				_ = o.Close()
			}
		}
	}()
}

// Close stops watching and waits for running probes.
func (d *Doubter) Close() {
	d.h.Network().StopNotify(d.notif)
	d.cancel()
	d.wg.Wait()
}
