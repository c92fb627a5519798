package tun

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
)

// Flow table bounds. A flow the policy allowed once (in either direction)
// carries its answers back without a policy check until it has been idle
// for flowIdle; past maxFlows new flows are checked packet by packet.
const (
	flowIdle = 5 * time.Minute
	maxFlows = 1 << 16
)

// flowKey names a flow from this node's side: the member, the protocol,
// the port here and the port there (an ICMP echo: its identifier twice).
type flowKey struct {
	p             peer.ID
	proto         uint8
	local, remote uint16
}

// filter applies the access policy to packets, statefully: a TCP
// connection, UDP exchange or ping the policy allows one way is answered
// the other way, as a firewall's connection tracking does. A change of
// policy empties the table, so a newly denied flow stops within a packet.
type filter struct {
	pol  Policy
	ver  func() any // the policy held now, compared by identity; nil: never changes
	self peer.ID

	mu    sync.Mutex
	seen  any // the policy the table was filled under
	flows map[flowKey]time.Time
}

// policyHolder is the part of node/trust's Store that tells a policy change.
type policyHolder interface{ Policy() *cert.Policy }

func newFilter(pol Policy, self peer.ID) *filter {
	f := &filter{pol: pol, self: self, flows: map[flowKey]time.Time{}}
	if h, ok := pol.(policyHolder); ok {
		f.ver = func() any { return h.Policy() }
	}
	return f
}

// out decides a packet from this node to member p.
func (f *filter) out(p peer.ID, k packet, now time.Time) error {
	if f.pol == nil {
		return nil
	}
	key := flowKey{p: p, proto: k.proto, local: k.sport, remote: k.dport}
	return f.check(key, k, now, func() error { return f.pol.Allow(f.self, p, k.action()) })
}

// in decides a packet from member p to this node.
func (f *filter) in(p peer.ID, k packet, now time.Time) error {
	if f.pol == nil {
		return nil
	}
	key := flowKey{p: p, proto: k.proto, local: k.dport, remote: k.sport}
	return f.check(key, k, now, func() error { return f.pol.Allow(p, f.self, k.action()) })
}

func (f *filter) check(key flowKey, k packet, now time.Time, allow func() error) error {
	tracked := k.hasPorts
	var cur any
	if f.ver != nil {
		cur = f.ver()
	}
	if tracked {
		f.mu.Lock()
		if cur != f.seen {
			clear(f.flows)
			f.seen = cur
		}
		last, ok := f.flows[key]
		if ok && now.Sub(last) < flowIdle {
			if now.Sub(last) > time.Second {
				f.flows[key] = now
			}
			f.mu.Unlock()
			return nil
		}
		f.mu.Unlock()
	}
	if err := allow(); err != nil {
		return err
	}
	if tracked {
		f.mu.Lock()
		if len(f.flows) >= maxFlows {
			f.sweep(now)
		}
		if len(f.flows) < maxFlows {
			f.flows[key] = now
		}
		f.mu.Unlock()
	}
	return nil
}

// sweep drops idle flows. f.mu is held.
func (f *filter) sweep(now time.Time) {
	for k, t := range f.flows {
		if now.Sub(t) >= flowIdle {
			delete(f.flows, k)
		}
	}
}
