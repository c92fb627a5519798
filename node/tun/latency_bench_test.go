package tun_test

import (
	"encoding/binary"
	"flag"
	"io"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// gap is the pause between round trips in the RTT benchmarks.
var gap = flag.Duration("gap", 0, "pause between round trips in BenchmarkPacketRTT and BenchmarkStreamRTT (ping -i)")

// BenchmarkPacketRTT measures the round trip of one small packet through
// two engines joined by a real libp2p stream on 127.0.0.1: a's device
// hands the engine an ICMP echo, b's device answers it at once, and a's
// device gets the answer. Packets go one at a time, as ping sends them.
// Compare its p50-µs with BenchmarkStreamRTT's, the same hosts' stream
// ping-pong (what overlay ping measures): the difference is what the
// engines add (the channel devices' own hand-offs included).
//
// With -gap (as ping -i), each round trip starts from idle goroutines and
// threads, as a ping's does: the wake-ups are then what costs.
func BenchmarkPacketRTT(b *testing.B) {
	sa, sb := pair(b, nil, nil)
	req, reply := tuntest.Ping(sb.v4, sa.v4), tuntest.Ping(sa.v4, sb.v4)
	done := make(chan struct{})
	defer close(done)
	go func() { // b's "kernel": answers every echo
		for {
			select {
			case <-sb.dev.Inbound:
			case <-done:
				return
			}
			select {
			case sb.dev.Outbound <- reply:
			case <-done:
				return
			}
		}
	}()
	// The first round trip opens the streams both ways.
	sa.send(b, req)
	sa.recv(b)
	rtts := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		time.Sleep(*gap)
		t0 := time.Now()
		sa.dev.Outbound <- req
		<-sa.dev.Inbound
		rtts = append(rtts, time.Since(t0))
	}
	reportRTT(b, rtts)
}

// BenchmarkStreamRTT is BenchmarkPacketRTT's baseline: the same packet as
// a frame on one libp2p stream between two hosts on 127.0.0.1, echoed.
func BenchmarkStreamRTT(b *testing.B) {
	ha, hb := newHost(b), newHost(b)
	const proto = "/overlay-bench/echo"
	hb.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		_, _ = io.Copy(s, s)
	})
	if err := ha.Connect(b.Context(), peer.AddrInfo{ID: hb.ID(), Addrs: hb.Addrs()}); err != nil {
		b.Fatal(err)
	}
	s, err := ha.NewStream(b.Context(), hb.ID(), proto)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Reset()
	pkt := tuntest.Ping(netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("100.64.0.2"))
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(pkt)))
	frame = append(frame, pkt...)
	got := make([]byte, len(frame))
	echo := func() {
		if _, err := s.Write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(s, got); err != nil {
			b.Fatal(err)
		}
	}
	echo()
	rtts := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		time.Sleep(*gap)
		t0 := time.Now()
		echo()
		rtts = append(rtts, time.Since(t0))
	}
	reportRTT(b, rtts)
}

// reportRTT reports the median and 90th percentile of rtts.
func reportRTT(b *testing.B, rtts []time.Duration) {
	b.StopTimer()
	if len(rtts) == 0 {
		return
	}
	slices.Sort(rtts)
	b.ReportMetric(float64(rtts[len(rtts)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(rtts[len(rtts)*9/10].Nanoseconds())/1e3, "p90-µs")
}
