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

// holder keeps n raw connections open, each after an optional preamble
// and optionally trickling bytes. A connection the relay closes is opened
// again a second later, as an attacker would: the count stays in force.
type holder struct {
	ctx      context.Context
	cancel   context.CancelFunc
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	opened   atomic.Int64 // dials that succeeded, first ones and again
	failed   atomic.Int64
	closed   atomic.Int64 // by the relay, before stop
	answered atomic.Int64 // got a reply to the preamble (e.g. 101 Switching Protocols)
	wg       sync.WaitGroup
}

// hold starts n connection slots spread over addrs, at most 64 first dials
// at a time, and returns once every slot's first dial ended. preamble is
// written first; trickle, when set, gives the connection its bytes one a
// second, cycling.
func hold(ctx context.Context, addrs []string, n int, preamble, trickle func(addr string) []byte) *holder {
	h := &holder{conns: map[net.Conn]struct{}{}}
	h.ctx, h.cancel = context.WithCancel(ctx)
	sem := make(chan struct{}, 64)
	var first sync.WaitGroup
	for i := range n {
		addr := addrs[i%len(addrs)]
		sem <- struct{}{}
		first.Add(1)
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.slot(addr, preamble, trickle, func() { <-sem; first.Done() })
		}()
	}
	first.Wait()
	return h
}

// slot keeps one connection to addr open until stop; dialed is called once,
// after the first dial.
func (h *holder) slot(addr string, preamble, trickle func(string) []byte, dialed func()) {
	once := sync.OnceFunc(dialed)
	defer once()
	for h.ctx.Err() == nil {
		c, err := h.dial(addr, preamble)
		once()
		if err != nil {
			h.failed.Add(1)
			pauseCtx(h.ctx, time.Second)
			continue
		}
		var tw sync.WaitGroup
		if trickle != nil {
			tw.Add(1)
			go func() {
				defer tw.Done()
				h.trickle(c, trickle(addr))
			}()
		}
		h.watch(c)
		c.Close()
		tw.Wait()
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
		pauseCtx(h.ctx, time.Second)
	}
}

func (h *holder) dial(addr string, preamble func(string) []byte) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(h.ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if preamble != nil {
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(preamble(addr)); err != nil {
			c.Close()
			return nil, err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil { // close has already swept the map
		c.Close()
		return nil, h.ctx.Err()
	}
	h.conns[c] = struct{}{}
	h.opened.Add(1)
	return c, nil
}

// watch reads until the connection ends; an end before stop is the relay
// closing it.
func (h *holder) watch(c net.Conn) {
	buf := make([]byte, 4096)
	first := true
	for {
		n, err := c.Read(buf)
		if n > 0 && first {
			first = false
			h.answered.Add(1)
		}
		if err != nil {
			if h.ctx.Err() == nil {
				h.closed.Add(1)
			}
			return
		}
	}
}

func (h *holder) trickle(c net.Conn, b []byte) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(b[i%len(b) : i%len(b)+1]); err != nil {
			return
		}
	}
}

// close ends every connection and waits for the slots.
func (h *holder) close() {
	h.mu.Lock()
	h.cancel()
	for c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// detail says what the attacker saw; call it before close.
func (h *holder) detail(n int, what string) string {
	h.mu.Lock()
	open := len(h.conns)
	h.mu.Unlock()
	return fmt.Sprintf("%d of %d %s at the end; the relay closed %d (each opened again 1 s later), %d dials failed",
		open, n, what, h.closed.Load(), h.failed.Load())
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
		d := h.detail(n, "held (TCP and WS)")
		h.close()
		return d
	}}, nil
}

// attackHalfOpenWS sends n complete WebSocket upgrade requests, reads the
// answer and then says nothing.
func attackHalfOpenWS(ctx context.Context, t target, n int) (*running, error) {
	h := hold(ctx, []string{t.WS}, n, upgradeRequest, nil)
	return &running{stop: func() string {
		d := fmt.Sprintf("%s; %d upgrades answered", h.detail(n, "upgrades held"), h.answered.Load())
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
		d := h.detail(n, "trickling (TCP and WS)")
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
