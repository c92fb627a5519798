package wstransport_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/websocket"

	"github.com/overlay-net/overlay/internal/wstransport"
)

const echoProto = "/wstest/echo"

func ourHost(t *testing.T, opts ...wstransport.Option) host.Host {
	t.Helper()
	var o []any
	for _, x := range opts {
		o = append(o, x)
	}
	return echoHost(t, libp2p.Transport(wstransport.New, o...))
}

func stockHost(t *testing.T) host.Host {
	t.Helper()
	return echoHost(t, libp2p.Transport(websocket.New))
}

// echoHost is a host with transport alone, listening on loopback
// WebSocket and serving the echo protocol.
func echoHost(t *testing.T, transport libp2p.Option) host.Host {
	t.Helper()
	h, err := libp2p.New(transport, libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0/ws"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	serveEcho(h)
	return h
}

// serveEcho answers each stream with a SHA-256 of everything it read,
// after the writer half-closed.
func serveEcho(h host.Host) {
	h.SetStreamHandler(echoProto, func(s network.Stream) {
		sum := sha256.New()
		if _, err := io.Copy(sum, s); err != nil {
			s.Reset()
			return
		}
		s.Write(sum.Sum(nil))
		s.Close()
	})
}

// push sends n random bytes from a to b over a new stream, half-closes, and
// checks b's digest of them.
func push(t *testing.T, a, b host.Host, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatalf("connect: %v", err)
	}
	s, err := a.NewStream(ctx, b.ID(), echoProto)
	if err != nil {
		t.Fatalf("new stream: %v", err)
	}
	defer s.Close()
	data := make([]byte, n)
	rand.Read(data)
	want := sha256.Sum256(data)
	if _, err := s.Write(data); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatalf("close write: %v", err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("read digest: %v", err)
	}
	if !bytes.Equal(got, want[:]) {
		t.Fatalf("digest of %d bytes differs", n)
	}
	if tr := s.Conn().ConnState().Transport; tr != "websocket" {
		t.Fatalf("transport %q, want websocket", tr)
	}
}

func TestInteropOursDialsStock(t *testing.T) {
	push(t, ourHost(t), stockHost(t), 4<<20)
}

func TestInteropStockDialsOurs(t *testing.T) {
	push(t, stockHost(t), ourHost(t), 4<<20)
}

func TestLargeTransferBothWays(t *testing.T) {
	a, b := ourHost(t), ourHost(t)
	push(t, a, b, 64<<20)
	push(t, b, a, 64<<20)
}

// Odd sizes: buffers smaller than a TLS record, no pool, the accepting side
// at gorilla's floor (a control frame, 125 bytes); bytes must still arrive
// whole.
func TestSmallBuffersNoPool(t *testing.T) {
	small := wstransport.WithConfig(wstransport.Config{ReadBuffer: 256, AcceptReadBuffer: 125, WriteBuffer: 1000, NoWritePool: true})
	push(t, ourHost(t, small), stockHost(t), 8<<20)
	push(t, stockHost(t), ourHost(t, small), 8<<20)
}

// Accepted and dialed connections have their own read buffers: the
// accepting side's is a relay's memory per peer.
func TestReadBuffersApart(t *testing.T) {
	tr, err := wstransport.New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := tr.Config()
	if c.AcceptReadBuffer != wstransport.DefaultAcceptReadBuffer || c.ReadBuffer != wstransport.DefaultReadBuffer {
		t.Errorf("defaults: accepted %d, dialed %d; want %d, %d", c.AcceptReadBuffer, c.ReadBuffer,
			wstransport.DefaultAcceptReadBuffer, wstransport.DefaultReadBuffer)
	}
	tr, err = wstransport.New(nil, nil, wstransport.WithConfig(wstransport.Config{AcceptReadBuffer: 512}))
	if err != nil {
		t.Fatal(err)
	}
	if c := tr.Config(); c.AcceptReadBuffer != 512 || c.ReadBuffer != wstransport.DefaultReadBuffer {
		t.Errorf("accept buffer set to 512: accepted %d, dialed %d", c.AcceptReadBuffer, c.ReadBuffer)
	}
}
