package node_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
)

// benchPaths returns sender and receiver joined directly (TCP) or through a
// relay (WebSocket both hops).
func benchPair(b *testing.B, path string) (from, to *node.Node) {
	switch path {
	case "direct":
		x, y := nt.Relay(b), nt.Relay(b)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := x.Connect(ctx, nt.TCPAddr(b, y).String()); err != nil {
			b.Fatal(err)
		}
		return x, y
	default:
		_, a, c := relayedPair(b)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := a.Connect(ctx, c.ID().String()); err != nil {
			b.Fatal(err)
		}
		return a, c
	}
}

// BenchmarkMessageRTT sends one message at a time and reports the
// round-trip percentiles and the resulting rate.
func BenchmarkMessageRTT(b *testing.B) {
	for _, path := range []string{"direct", "relayed"} {
		b.Run(path, func(b *testing.B) {
			from, to := benchPair(b, path)
			data := make([]byte, 64)
			rtts := make([]time.Duration, 0, b.N)
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				rtt, err := from.Messages().Send(ctx, to.ID(), data)
				if err != nil {
					b.Fatal(err)
				}
				rtts = append(rtts, rtt)
			}
			el := time.Since(start)
			b.StopTimer()
			slices.Sort(rtts)
			b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
		})
	}
}

// BenchmarkMessageThroughput keeps 32 sends in flight to one receiver.
func BenchmarkMessageThroughput(b *testing.B) {
	for _, path := range []string{"direct", "relayed"} {
		b.Run(path, func(b *testing.B) {
			from, to := benchPair(b, path)
			data := make([]byte, 1024)
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			work := make(chan struct{}, b.N)
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			for range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range work {
						if _, err := from.Messages().Send(context.Background(), to.ID(), data); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkPerf measures bulk throughput with the perf protocol.
func BenchmarkPerf(b *testing.B) {
	for _, path := range []string{"direct", "relayed"} {
		b.Run(path, func(b *testing.B) {
			from, to := benchPair(b, path)
			const size = 32 << 20
			b.SetBytes(size)
			b.ResetTimer()
			for range b.N {
				if _, err := protocol.RunPerf(context.Background(), from.Host(), to.ID(), 0, size); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
