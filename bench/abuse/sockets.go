package main

// Attacks with raw sockets: connections that never speak, WebSocket
// upgrades followed by silence, requests trickled a byte a second, and
// garbage on every listener.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// target is the relay under attack.
type target struct {
	TCP, WS, QUIC string // host:port of each listener
	WSMA, TCPMA   string // full /p2p/ multiaddrs
	API           string // control API host:port
	Member        string // a member's peer ID, for API requests that name one
}

// running is an attack in force; stop ends it and says what the attacker
// saw.
type running struct {
	stop func() string
	// apiAccepted counts hostile control API requests that were served
	// (the control API attack only).
	apiAccepted *atomic.Int64
}

// holder keeps many raw connections open, each after an optional preamble
// and optionally trickling bytes, and counts those the relay closes.
type holder struct {
	mu       sync.Mutex
	conns    []net.Conn
	opened   atomic.Int64
	failed   atomic.Int64
	closed   atomic.Int64 // by the relay, before stop
	answered atomic.Int64 // got a reply to the preamble (e.g. 101 Switching Protocols)
	stopping atomic.Bool
	wg       sync.WaitGroup
}

// hold opens n connections spread over addrs, at most 64 dials at a time,
// writes preamble on each and returns once every dial ended. trickle, when
// set, gives each connection its bytes one a second, cycling.
func hold(ctx context.Context, addrs []string, n int, preamble func(addr string) []byte, trickle func(addr string) []byte) *holder {
	h := &holder{}
	sem := make(chan struct{}, 64)
	var dials sync.WaitGroup
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		addr := addrs[i%len(addrs)]
		sem <- struct{}{}
		dials.Add(1)
		go func() {
			defer func() { <-sem; dials.Done() }()
			c, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", addr)
			if err != nil {
				h.failed.Add(1)
				return
			}
			if preamble != nil {
				c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(preamble(addr)); err != nil {
					h.failed.Add(1)
					c.Close()
					return
				}
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
			h.opened.Add(1)
			h.wg.Add(1)
			go h.watch(c)
			if trickle != nil {
				h.wg.Add(1)
				go h.trickle(ctx, c, trickle(addr))
			}
		}()
	}
	dials.Wait()
	return h
}

// watch reads until the connection ends; an end before stop is the relay
// closing it.
func (h *holder) watch(c net.Conn) {
	defer h.wg.Done()
	buf := make([]byte, 4096)
	first := true
	for {
		n, err := c.Read(buf)
		if n > 0 && first {
			first = false
			h.answered.Add(1)
		}
		if err != nil {
			if !h.stopping.Load() {
				h.closed.Add(1)
			}
			return
		}
	}
}

func (h *holder) trickle(ctx context.Context, c net.Conn, b []byte) {
	defer h.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(b[i%len(b) : i%len(b)+1]); err != nil {
			return
		}
	}
}

// close ends every connection and waits for their goroutines.
func (h *holder) close() {
	h.stopping.Store(true)
	h.mu.Lock()
	for _, c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

func (h *holder) detail(what string) string {
	return fmt.Sprintf("%d %s, %d closed by relay, %d dials failed", h.opened.Load(), what, h.closed.Load(), h.failed.Load())
}

// upgradeRequest is a complete WebSocket upgrade request for addr.
func upgradeRequest(addr string) []byte {
	key := make([]byte, 16)
	rand.Read(key)
	return []byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\n\r\n")
}

// attackIdle holds n connections, half on the TCP and half on the WebSocket
// listener, that never send a byte: the stranger connections held.
func attackIdle(ctx context.Context, t target, n int) (*running, error) {
	h := hold(ctx, []string{t.TCP, t.WS}, n, nil, nil)
	return &running{stop: func() string {
		d := h.detail("held (TCP and WS)")
		h.close()
		return d
	}}, nil
}

// attackHalfOpenWS sends n complete WebSocket upgrade requests, reads the
// answer and then says nothing.
func attackHalfOpenWS(ctx context.Context, t target, n int) (*running, error) {
	h := hold(ctx, []string{t.WS}, n, upgradeRequest, nil)
	return &running{stop: func() string {
		d := fmt.Sprintf("%s; %d answered", h.detail("upgrades held"), h.answered.Load())
		h.close()
		return d
	}}, nil
}

// attackSlowLoris trickles, a byte a second, a WebSocket upgrade request to
// the WebSocket listener and multistream-select's header to the TCP one.
func attackSlowLoris(ctx context.Context, t target, n int) (*running, error) {
	tr := func(addr string) []byte {
		if addr == t.WS {
			return upgradeRequest(addr)
		}
		return []byte("\x13/multistream/1.0.0\n")
	}
	h := hold(ctx, []string{t.TCP, t.WS}, n, nil, tr)
	return &running{stop: func() string {
		d := h.detail("trickling (TCP and WS)")
		h.close()
		return d
	}}, nil
}

// attackGarbage has n workers each connect over and over to the TCP
// listener, the WebSocket listener (raw, and after a valid upgrade) and
// write 64 KiB of random bytes; and sends random datagrams to the QUIC
// port. It is in force once every worker has written once.
func attackGarbage(ctx context.Context, t target, n int) (*running, error) {
	n = max(n, 3) // a worker of each kind at least
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg                  sync.WaitGroup
		conns, bytes, dgram atomic.Int64
		cut                 atomic.Int64 // writes the relay refused before 64 KiB
		ready               sync.WaitGroup
	)
	junk := make([]byte, 64<<10)
	rand.Read(junk)
	kinds := []string{"tcp", "ws", "ws-upgraded"}
	for i := range n {
		kind := kinds[i%len(kinds)]
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for ctx.Err() == nil {
				addr := t.TCP
				if kind != "tcp" {
					addr = t.WS
				}
				c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
				if err == nil {
					conns.Add(1)
					c.SetDeadline(time.Now().Add(5 * time.Second))
					if kind == "ws-upgraded" {
						c.Write(upgradeRequest(addr))
					}
					w, err := c.Write(junk)
					bytes.Add(int64(w))
					if err != nil {
						cut.Add(1)
					}
					c.Close()
				}
				if first {
					first = false
					ready.Done()
				}
				// Paced, so the harness does not take the cores
				// the relay needs: the attack is volume, not a spin.
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	// QUIC: random datagrams from a few source ports, ~2000 a second.
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("udp", t.QUIC)
			if err != nil {
				return
			}
			defer c.Close()
			b := make([]byte, 1200)
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				rand.Read(b)
				if _, err := c.Write(b); err == nil {
					dgram.Add(1)
				}
			}
		}()
	}
	ready.Wait()
	return &running{stop: func() string {
		cancel()
		wg.Wait()
		return fmt.Sprintf("%d garbage connections (TCP, WS, WS after upgrade), %.0f MiB, %d cut short; %d UDP datagrams to QUIC",
			conns.Load(), float64(bytes.Load())/(1<<20), cut.Load(), dgram.Load())
	}}, nil
}

// hostPort returns host:port of a multiaddr string /ip4/H/{tcp,udp}/P/...
func hostPort(addr string) string {
	f := strings.Split(addr, "/")
	if len(f) < 5 {
		return ""
	}
	return net.JoinHostPort(f[2], f[4])
}
