package topics_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/node/topics"
)

// scale is one run of many members on one topic over several relays.
type scale struct {
	members    int // followers, publishers among them
	direct     int // members that also reach each other directly; the rest only reach relays
	relays     int
	publishers int
	messages   int // in all, split among the publishers
	size       int // payload bytes, at least 8 (the send time)
	stopRelay  bool
	rate       float64 // messages per second per publisher; 0: as fast as Limits allow
}

type scaleResult struct {
	relayedLat, directLat []time.Duration
	elapsed               time.Duration
	deliveries            int
	wireBytes, wireRPCs   uint64
	heapPerFollower       float64
}

// runScale starts the network, has every member follow the topic, the
// publishers publish, and checks that every member receives every message
// exactly once, in order per publisher, with nothing missed or dropped;
// with stopRelay the first relay stops halfway through.
func runScale(tb testing.TB, sc scale) scaleResult {
	tb.Helper()
	const topic = "scale"
	var rs []*node.Node
	var relayAddrs []ma.Multiaddr
	for range sc.relays {
		r := nt.Relay(tb)
		rs = append(rs, r)
		relayAddrs = append(relayAddrs, nt.WSAddr(tb, r))
	}
	ms := make([]*node.Node, sc.members)
	// When the first relay stops, the other path may lag by seconds (under
	// -race on a busy machine): a generous hold keeps a slow path from
	// counting as a loss. Lag is measured, not asserted.
	hold := withLimits(func(l *topics.Limits) { l.Hold = 30 * time.Second })
	var wg sync.WaitGroup
	for i := range ms {
		wg.Go(func() {
			if i < sc.direct {
				ms[i] = nt.Peer(tb, relayAddrs, nt.WithDirect(0), hold)
			} else {
				ms[i] = nt.Peer(tb, relayAddrs, hold)
			}
		})
	}
	wg.Wait()
	nt.Eventually(tb, 60*time.Second, "every member reserved on every relay", func() bool {
		for _, m := range ms {
			if !nt.Reserved(m, sc.relays) {
				return false
			}
		}
		return true
	})
	for i := 0; i < sc.direct; i++ {
		for j := i + 1; j < sc.direct; j++ {
			connect(tb, ms[i], ms[j])
		}
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	subs := make([]*topics.Sub, len(ms))
	for i, m := range ms {
		subs[i] = follow(tb, m, topic, 0) // Limits.Buffer
	}
	relayIDs := make([]peer.ID, len(rs))
	for i, r := range rs {
		relayIDs[i] = r.ID()
	}
	memberIDs := make([]peer.ID, len(ms))
	for i, m := range ms {
		memberIDs[i] = m.ID()
	}
	for _, r := range rs {
		waitMesh(tb, r, topic, memberIDs...)
	}
	for _, m := range ms {
		waitMesh(tb, m, topic, relayIDs...)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	var wireBefore, rpcsBefore uint64
	for _, n := range append(slices.Clone(rs), ms...) {
		wireBefore += n.Topics().Wire().Bytes
		rpcsBefore += n.Topics().Wire().RPCs
	}

	type got struct {
		lat []time.Duration
		err error
	}
	results := make([]got, len(ms))
	var recvWG sync.WaitGroup
	for i, s := range subs {
		recvWG.Go(func() {
			next := map[peer.ID]uint64{}
			deadline := time.After(120 * time.Second)
			for n := 0; n < sc.messages; n++ {
				select {
				case m := <-s.C():
					if want := next[m.From] + 1; m.Seq != want {
						results[i].err = fmt.Errorf("member %d: seq %d from %s, want %d (%+v, %+v, %v, %+v)", i, m.Seq, m.From, want, s.Stats(), ms[i].Topics().Topics(), ms[i].Topics().Stats(), ms[i].Topics().Wire())
						return
					}
					next[m.From] = m.Seq
					sent := time.Unix(0, int64(binary.BigEndian.Uint64(m.Data)))
					results[i].lat = append(results[i].lat, m.Received.Sub(sent))
				case <-deadline:
					results[i].err = fmt.Errorf("member %d: %d of %d messages in 120 s (%+v)", i, n, sc.messages, s.Stats())
					return
				}
			}
		})
	}
	start := time.Now()
	per := sc.messages / sc.publishers
	var published sync.WaitGroup
	half := make(chan struct{})
	var halfOnce sync.Once
	for p := 0; p < sc.publishers; p++ {
		pub := ms[p*len(ms)/sc.publishers] // spread over direct and relayed members
		count := per
		if p == 0 {
			count += sc.messages - per*sc.publishers
		}
		published.Go(func() {
			data := make([]byte, sc.size)
			var tick *time.Ticker
			if sc.rate > 0 {
				tick = time.NewTicker(time.Duration(float64(time.Second) / sc.rate))
				defer tick.Stop()
			}
			for k := 0; k < count; k++ {
				if tick != nil {
					<-tick.C
				}
				if p == 0 && k == count/2 {
					halfOnce.Do(func() { close(half) })
				}
				binary.BigEndian.PutUint64(data, uint64(time.Now().UnixNano()))
				if _, err := pub.Topics().Publish(context.Background(), topic, data); err != nil {
					tb.Errorf("publish: %v", err)
					return
				}
			}
		})
	}
	if sc.stopRelay {
		<-half
		rs[0].Close()
	}
	published.Wait()
	recvWG.Wait()
	res := scaleResult{elapsed: time.Since(start)}
	for i, r := range results {
		if r.err != nil {
			for _, rn := range append(slices.Clone(rs), ms...) {
				tb.Logf("node %s: %v %+v", rn.ID(), rn.Topics().Stats(), rn.Topics().Wire())
			}
			tb.Fatal(r.err)
		}
		if st := subs[i].Stats(); st.Missed != 0 || st.Dropped != 0 {
			tb.Fatalf("member %d: %+v, want nothing missed or dropped", i, st)
		}
		if ti := ms[i].Topics().Topics(); len(ti) != 1 || ti[0].Late != 0 {
			tb.Fatalf("member %d: %+v, want nothing late", i, ti)
		}
		if i < sc.direct {
			res.directLat = append(res.directLat, r.lat...)
		} else {
			res.relayedLat = append(res.relayedLat, r.lat...)
		}
		res.deliveries += len(r.lat)
	}
	// No duplicate may follow: each follower's queue is empty.
	for i, s := range subs {
		select {
		case m := <-s.C():
			tb.Fatalf("member %d: extra message seq %d from %s", i, m.Seq, m.From)
		default:
		}
	}
	for _, n := range append(slices.Clone(rs), ms...) {
		res.wireBytes += n.Topics().Wire().Bytes
		res.wireRPCs += n.Topics().Wire().RPCs
	}
	res.wireBytes -= wireBefore
	res.wireRPCs -= rpcsBefore
	res.heapPerFollower = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(len(ms))
	return res
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// A small version of the scale run, for every test run: 8 members over
// 2 relays, 6 of them reaching others only through the relays, 2
// publishers, a relay stopped halfway.
func TestScaleSmallRelayStops(t *testing.T) {
	runScale(t, scale{members: 8, direct: 2, relays: 2, publishers: 2, messages: 200, size: 64, stopRelay: true})
}

// benchRate is each publisher's rate in BenchmarkTopicScale
// (OVERLAY_TOPIC_RATE overrides it).
var benchRate = func() float64 {
	if v, err := strconv.ParseFloat(os.Getenv("OVERLAY_TOPIC_RATE"), 64); err == nil {
		return v
	}
	return 100
}()

// BenchmarkTopicScale is the scale run of docs/topics.md: 30 members over
// 2 relays, 24 reaching others only through the relays, 4 publishers,
// 10,000 messages of 256 bytes at benchRate each, the first relay stopped halfway. Run it
// once: go test -run '^$' -bench TopicScale -benchtime 1x ./node/topics
func BenchmarkTopicScale(b *testing.B) {
	for range b.N {
		sc := scale{members: 30, direct: 6, relays: 2, publishers: 4, messages: 10000, size: 256, stopRelay: true, rate: benchRate}
		r := runScale(b, sc)
		all := append(slices.Clone(r.relayedLat), r.directLat...)
		b.ReportMetric(float64(pct(all, 0.5).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(pct(all, 0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(pct(r.relayedLat, 0.5).Microseconds())/1000, "relayed-p50-ms")
		b.ReportMetric(float64(pct(r.directLat, 0.5).Microseconds())/1000, "direct-p50-ms")
		b.ReportMetric(float64(sc.messages)/r.elapsed.Seconds(), "msgs/s")
		b.ReportMetric(float64(r.wireBytes)/float64(r.deliveries), "wire-B/delivery")
		b.ReportMetric(float64(r.wireBytes)/float64(r.wireRPCs), "B/rpc")
		b.ReportMetric(r.heapPerFollower, "heap-B/follower")
		b.ReportMetric(float64(r.deliveries), "deliveries")
	}
}
