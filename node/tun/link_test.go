package tun_test

import (
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun/tuntest"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// tcp4Sized is a TCP segment from src to dst, dport dport, of n bytes in all.
func tcp4Sized(a, b *side, dport uint16, n int) []byte {
	p := make([]byte, n)
	copy(p, tcp4(a.v4, b.v4, 40000, dport))
	ip := header.IPv4(p)
	ip.SetTotalLength(uint16(n))
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
	return p
}

func TestSmallPacketsWrittenByTheReadLoop(t *testing.T) {
	a, b := pair(t, nil, nil)
	ping := tuntest.Ping(b.v4, a.v4)
	// One packet at a time, as ping sends them: once the stream is open
	// and takes writes at once, the read loop writes each itself. A write
	// that a loaded machine made slow sends the next one through the
	// link's goroutine, so wait for the first inline write.
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; a.e.Stats().InlineWrites == 0; n++ {
		if time.Now().After(deadline) {
			t.Fatalf("no packet written by the read loop in %d packets", n)
		}
		a.send(t, ping)
		if got := b.recv(t); string(got) != string(ping) {
			t.Fatalf("b got % x, want % x", got, ping)
		}
	}
	if s := a.e.Stats(); s.StreamsOpened != 1 {
		t.Errorf("a opened %d streams, want 1", s.StreamsOpened)
	}
}

func TestOrderAcrossReadLoopAndLinkWrites(t *testing.T) {
	a, b := pair(t, nil, nil)
	a.send(t, tuntest.Ping(b.v4, a.v4))
	b.recv(t)
	// Small and MTU-sized packets back to back: some the read loop writes
	// itself, some queue behind a write under way and go through the
	// link's goroutine. All arrive, in order.
	const n = 300
	go func() {
		for i := range n {
			size := 60
			if i%3 == 0 {
				size = 12000
			}
			a.dev.Outbound <- tcp4Sized(a, b, uint16(1000+i), size)
		}
	}()
	for i := range n {
		got := header.IPv4(b.recv(t))
		if port := header.TCP(got.Payload()).DestinationPort(); port != uint16(1000+i) {
			t.Fatalf("packet %d: port %d", i, port)
		}
		if want := 60; i%3 != 0 && len(got) != want {
			t.Fatalf("packet %d: %d bytes, want %d", i, len(got), want)
		}
	}
	if s := a.e.Stats(); s.StreamsOpened != 1 || s.PacketsOut != n+1 {
		t.Errorf("a's stats %+v: want %d packets on 1 stream", s, n+1)
	}
}

func TestPacketAfterADeadStreamArrives(t *testing.T) {
	a, b := pair(t, nil, nil)
	ping := tuntest.Ping(b.v4, a.v4)
	a.send(t, ping)
	b.recv(t)
	// The connection dies under the open stream: the next write fails
	// (from the read loop or the link's goroutine) and the link writes the
	// packet again on a fresh stream over a new connection.
	if err := a.h.Network().ClosePeer(b.h.ID()); err != nil {
		t.Fatal(err)
	}
	a.send(t, ping)
	if got := b.recv(t); string(got) != string(ping) {
		t.Fatalf("b got % x, want % x", got, ping)
	}
	if s := a.e.Stats(); s.StreamsOpened != 2 {
		t.Errorf("a opened %d streams, want 2", s.StreamsOpened)
	}
}
