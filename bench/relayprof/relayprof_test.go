package relayprof

import (
	"context"
	"os"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
)

// BenchmarkRelayedPerf downloads 32 MiB per op from one WebSocket-only
// private peer to another through an overlay relay (both hops WebSocket),
// and reports the whole process's CPU seconds per GB moved (relay and both
// peers together).
func BenchmarkRelayedPerf(b *testing.B) {
	var opts []nt.Option
	if s := os.Getenv("RELAYPROF_BUFFER"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("RELAYPROF_BUFFER: %v", err)
		}
		opts = append(opts, nt.WithRelayConfig(func(c *relay.Config) { c.BufferSize = n }))
	}
	var r, src, dst *node.Node
	as("relay", func() { r = nt.Relay(b, append(opts, nt.WithoutDHT(), nt.WithNetwork("bench"))...) })
	relayWS := nt.WSAddr(b, r)
	as("src", func() { src = nt.Peer(b, []ma.Multiaddr{relayWS}, nt.WithoutDHT(), nt.WithNetwork("bench")) })
	as("dst", func() { dst = nt.Peer(b, []ma.Multiaddr{relayWS}, nt.WithoutDHT(), nt.WithNetwork("bench")) })
	nt.Eventually(b, 10*time.Second, "both peers reserved", func() bool {
		return nt.Reserved(src, 1) && nt.Reserved(dst, 1)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	circuit := relayWS.String() + "/p2p-circuit/p2p/" + dst.ID().String()
	var err error
	as("src", func() { _, err = src.Connect(ctx, circuit) })
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range src.Host().Network().ConnsToPeer(dst.ID()) {
		if !isCircuit(c.RemoteMultiaddr()) {
			b.Fatalf("source has a direct connection to the target: %s", c.RemoteMultiaddr())
		}
	}
	const size = 32 << 20
	// Warm-up: grow windows, leave TLS's small first records behind.
	perf := func() {
		as("src", func() { _, err = protocol.RunPerf(ctx, src.Host(), dst.ID(), 0, size) })
		if err != nil {
			b.Fatal(err)
		}
	}
	perf()
	b.SetBytes(size)
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for range b.N {
		perf()
	}
	b.StopTimer()
	b.ReportMetric((cpuSeconds()-cpu0)/(float64(b.N)*size/1e9), "cpu-s/GB")
}

// as runs f under the pprof label node=name; goroutines f starts inherit it.
func as(name string, f func()) {
	pprof.Do(context.Background(), pprof.Labels("node", name), func(context.Context) { f() })
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
