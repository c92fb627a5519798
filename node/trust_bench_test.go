package node_test

import (
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/node/trust"
)

// BenchmarkRevocationSpread measures how long a revocation list published
// at one member takes to be held by every node of a network of 2 relays
// and 22 members (11 on each relay, one of them on both), and, once, how
// long until every node has cut off a revoked member. Results are in
// docs/revocation.md.
//
//	go test -run '^$' -bench RevocationSpread -benchtime 20x ./node/
func BenchmarkRevocationSpread(b *testing.B) {
	ca := newTestCA(b)
	o := []nt.Option{withCAPub(ca.Pub), nt.WithoutDHT()}
	r1, r2 := nt.Relay(b, o...), nt.Relay(b, o...)
	on1, on2 := []ma.Multiaddr{nt.WSAddr(b, r1)}, []ma.Multiaddr{nt.WSAddr(b, r2)}
	all := []*node.Node{r1, r2}
	var peers []*node.Node
	for i := 0; i < 22; i++ {
		relays := on1
		switch {
		case i == 0:
			relays = append(append([]ma.Multiaddr{}, on1...), on2...)
		case i%2 == 1:
			relays = on2
		}
		p := nt.Peer(b, relays, o...)
		peers = append(peers, p)
		all = append(all, p)
	}
	nt.Eventually(b, 60*time.Second, "every peer reserved", func() bool {
		for i, p := range peers {
			want := 1
			if i == 0 {
				want = 2
			}
			if !nt.Reserved(p, want) {
				return false
			}
		}
		return true
	})
	publisher, victim := peers[2], peers[3] // on r1 and on r2

	// held waits until every node holds version v and returns when the
	// last one took it.
	held := func(v uint64, publish func()) time.Duration {
		var mu sync.Mutex
		got := map[*node.Node]bool{}
		done := make(chan struct{})
		var cancels []func()
		for _, n := range all {
			cancels = append(cancels, n.Trust().Subscribe(func(c trust.Change) {
				if c.Revocations == nil || c.Revocations.Version < v {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if !got[n] {
					got[n] = true
					if len(got) == len(all) {
						close(done)
					}
				}
			}))
		}
		defer func() {
			for _, c := range cancels {
				c()
			}
		}()
		start := time.Now()
		publish()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatalf("version %d reached %d of %d nodes in 30 s", v, len(got), len(all))
		}
		return time.Since(start)
	}

	b.ResetTimer()
	var worst time.Duration
	for i := 0; i < b.N; i++ {
		someone, _ := peer.IDFromPrivateKey(nt.Key(b))
		doc := ca.Revoke(someone)
		d := held(ca.Rev.Version, func() {
			if _, err := publisher.Trust().Offer(cert.KindRevocations, doc); err != nil {
				b.Fatal(err)
			}
		})
		worst = max(worst, d)
	}
	b.StopTimer()
	b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
	b.ReportMetric(float64(len(all)), "nodes")

	// Once: a real member revoked, until nobody holds a connection to it.
	doc := ca.Revoke(victim.ID())
	start := time.Now()
	if _, err := publisher.Trust().Offer(cert.KindRevocations, doc); err != nil {
		b.Fatal(err)
	}
	nt.Eventually(b, 30*time.Second, "every node cut the victim off", func() bool {
		for _, n := range all {
			if n != victim && n.Host().Network().Connectedness(victim.ID()) == network.Connected {
				return false
			}
		}
		return true
	})
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "cutoff-ms")
}
