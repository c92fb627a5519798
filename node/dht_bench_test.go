package node_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// BenchmarkDHTLookup measures FindPeer in an in-process network of 10
// relays (DHT servers) and 40 private peers (4 per relay): one private peer
// looks up another reserved on some other relay.
func BenchmarkDHTLookup(b *testing.B) {
	const relays, perRelay = 10, 4
	var rs []*node.Node
	for i := range relays {
		var opts []nt.Option
		if i > 0 {
			opts = append(opts, nt.WithBootstrap(nt.TCPAddr(b, rs[0])))
		}
		rs = append(rs, nt.Relay(b, opts...))
	}
	var peers []*node.Node
	for _, r := range rs {
		for range perRelay {
			peers = append(peers, nt.Peer(b, []ma.Multiaddr{nt.WSAddr(b, r)}))
		}
	}
	for _, p := range peers {
		nt.Eventually(b, 60*time.Second, "reserved and published", func() bool {
			return nt.Reserved(p, 1) && p.Published() > 0
		})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		i := rng.IntN(len(peers))
		j := (i + perRelay + rng.IntN(len(peers)-2*perRelay)) % len(peers) // on another relay
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		start := time.Now()
		_, err := peers[i].FindPeer(ctx, peers[j].ID())
		lat = append(lat, time.Since(start))
		cancel()
		if err != nil {
			b.Fatalf("lookup %d -> %d: %v", i, j, err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(relays+len(peers)), "nodes")
}
