// Package netcheck measures what a node needs to know about its NAT, from
// the UDP socket its QUIC transport listens on (the port hole punching
// uses): whether UDP reaches its relays, whether the NAT maps that socket to
// the same public port for every destination (endpoint-independent mapping,
// which hole punching needs), whether the NAT hairpins, and each relay's
// round-trip time. Relays answer the probes on their own QUIC socket.
// The probes are STUN Binding requests (wire.go), sent and read through
// go-libp2p's shared non-QUIC packet conn (quic.go, socket.go).
package netcheck

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Probing: each relay address gets probesPerRelay requests, probeGap
// apart, each with its own transaction; the fastest answer is the RTT.
// Later ones stand in for lost earlier ones.
const (
	probesPerRelay = 3
	probeGap       = 100 * time.Millisecond
	// DefaultTimeout bounds one run.
	DefaultTimeout = 3 * time.Second
	// hairpinWait is how long a request sent to our own public address
	// may take to come back.
	hairpinWait = 500 * time.Millisecond
)

// Target is one relay to probe: its peer ID and the UDP addresses of its
// QUIC listener.
type Target struct {
	ID    peer.ID
	Addrs []*net.UDPAddr
}

// Report is what one netcheck run found. Pointers are nil where the run
// could not tell.
type Report struct {
	At time.Time `json:"at"`
	// TookMs is how long the run took, in milliseconds.
	TookMs float64 `json:"took_ms"`
	// Local is the UDP socket probed from: the QUIC listener's.
	Local string `json:"local,omitempty"`
	// UDP is true when at least one relay answered over UDP.
	UDP bool `json:"udp"`
	// Mapped is the public address relays saw (the first relay's, when
	// they disagree).
	Mapped string `json:"mapped,omitempty"`
	// MappingVaries is true when relays saw different public addresses
	// (endpoint-dependent mapping, a "symmetric" NAT: hole punching with
	// the observed port fails); nil when fewer than two destinations (relay
	// addresses, see OtherMapped) answered.
	MappingVaries *bool `json:"mapping_varies_by_dest,omitempty"`
	// BehindNAT is true when the mapped address is not one of this host's.
	BehindNAT *bool `json:"behind_nat,omitempty"`
	// Hairpin is true when a packet sent to our own public address came
	// back; nil when not tested (HairpinNote says why).
	Hairpin     *bool  `json:"hairpin,omitempty"`
	HairpinNote string `json:"hairpin_note,omitempty"`
	// Relays are the relays probed, in the order configured.
	Relays []RelayReport `json:"relays"`
	// Preferred is the relay with the lowest RTT.
	Preferred string `json:"preferred,omitempty"`
	// Error says why netcheck could not run at all.
	Error string `json:"error,omitempty"`
}

// RelayReport is one relay's part of a report.
type RelayReport struct {
	Relay string `json:"relay"`
	// Addr is the relay's UDP address that answered (or the first tried).
	Addr string `json:"addr,omitempty"`
	// RTTMs is the fastest probe's round trip, in milliseconds; 0 if none
	// was answered.
	RTTMs  float64 `json:"rtt_ms,omitempty"`
	Mapped string  `json:"mapped,omitempty"`
	// OtherMapped is what the relay's other UDP addresses (another port)
	// saw: each is one more destination for telling the mapping apart.
	OtherMapped []string `json:"other_mapped,omitempty"`
	Error       string   `json:"error,omitempty"`
}

// NAT classes, for status and metrics labels.
const (
	ClassUnknown             = "unknown"              // no run yet, or one destination answered
	ClassNoUDP               = "no-udp"               // this node sends no UDP (--ws-only, --psk)
	ClassUDPBlocked          = "udp-blocked"          // no relay answered over UDP
	ClassEndpointIndependent = "endpoint-independent" // the same public port for every relay
	ClassEndpointDependent   = "endpoint-dependent"   // a new port per destination (symmetric)
)

// Class sums the report up in one of the Class* values.
func (r *Report) Class() string {
	switch {
	case r == nil:
		return ClassUnknown
	case r.Error != "" && r.Local == "":
		return ClassNoUDP
	case len(r.Relays) > 0 && !r.UDP:
		return ClassUDPBlocked
	case r.MappingVaries == nil:
		return ClassUnknown
	case *r.MappingVaries:
		return ClassEndpointDependent
	}
	return ClassEndpointIndependent
}

// Run probes every target from s and sums up what it saw. It returns once
// every probe is answered or ctx ends (bound it: DefaultTimeout).
func Run(ctx context.Context, s *Socket, targets []Target) Report {
	start := time.Now()
	r := Report{At: start.UTC(), Relays: make([]RelayReport, len(targets))}
	if l := s.LocalAddr(); l != nil {
		r.Local = l.String()
	}
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Relays[i] = probeRelay(ctx, s, t)
		}()
	}
	wg.Wait()
	r.sum()
	if mapped, err := net.ResolveUDPAddr("udp", r.Mapped); err == nil && r.Mapped != "" {
		behind := !isLocal(mapped.IP)
		r.BehindNAT = &behind
		r.hairpin(ctx, s, mapped)
	} else {
		r.HairpinNote = "no public address known"
	}
	r.TookMs = ms(time.Since(start))
	return r
}

// sum fills UDP, Mapped, MappingVaries and Preferred from the relays.
func (r *Report) sum() {
	var mapped []string
	best := -1.0
	for _, rr := range r.Relays {
		if rr.Mapped == "" {
			continue
		}
		r.UDP = true
		mapped = append(mapped, rr.Mapped)
		mapped = append(mapped, rr.OtherMapped...)
		if best < 0 || rr.RTTMs < best {
			best, r.Preferred = rr.RTTMs, rr.Relay
		}
	}
	if len(mapped) == 0 {
		return
	}
	r.Mapped = mapped[0]
	if len(mapped) >= 2 {
		varies := len(slices.Compact(slices.Sorted(slices.Values(mapped)))) > 1
		r.MappingVaries = &varies
	}
}

// hairpin sends a request to our own public address and waits for it to
// come back, when that tells something: behind a NAT.
func (r *Report) hairpin(ctx context.Context, s *Socket, mapped *net.UDPAddr) {
	if r.BehindNAT == nil || !*r.BehindNAT {
		r.HairpinNote = "not behind a NAT: nothing to hairpin"
		return
	}
	ctx, cancel := context.WithTimeout(ctx, hairpinWait)
	defer cancel()
	ch := make(chan arrival, 2)
	forget, _, err := s.send(mapped, ch)
	if err != nil {
		r.HairpinNote = err.Error()
		return
	}
	defer forget()
	ok := false
	select {
	case <-ch:
		ok = true
	case <-ctx.Done():
	}
	r.Hairpin = &ok
}

// maxOtherAddrs bounds the extra addresses of one relay probed for
// OtherMapped once one has answered.
const maxOtherAddrs = 3

// probeRelay probes each of t's addresses in turn until one answers, then
// the relay's other addresses on the same IP (another port: another
// destination for a NAT that maps per destination), up to maxOtherAddrs.
func probeRelay(ctx context.Context, s *Socket, t Target) RelayReport {
	rr := RelayReport{Relay: t.ID.String()}
	if len(t.Addrs) == 0 {
		rr.Error = "no UDP (QUIC) address known for this relay"
		return rr
	}
	for i, a := range t.Addrs {
		rr.Addr = a.String()
		rtt, mapped, err := probe(ctx, s, a)
		if err == nil {
			rr.RTTMs, rr.Mapped, rr.Error = ms(rtt), mapped.String(), ""
			for _, o := range t.Addrs[i+1:] {
				if len(rr.OtherMapped) == maxOtherAddrs || ctx.Err() != nil {
					break
				}
				if !o.IP.Equal(a.IP) || o.Port == a.Port {
					continue
				}
				if _, m, err := probe(ctx, s, o); err == nil {
					rr.OtherMapped = append(rr.OtherMapped, m.String())
				}
			}
			return rr
		}
		rr.Error = err.Error()
		if ctx.Err() != nil {
			break
		}
	}
	return rr
}

// probe sends probesPerRelay requests to a, probeGap apart, and returns the
// fastest round trip and the address the first answer saw. Once all are
// sent and one is answered, stragglers get one more probeGap.
func probe(ctx context.Context, s *Socket, a *net.UDPAddr) (time.Duration, *net.UDPAddr, error) {
	ch := make(chan arrival, 2*probesPerRelay)
	sent := map[txID]time.Time{}
	answered := map[txID]bool{}
	var forgets []func()
	defer func() {
		for _, f := range forgets {
			f()
		}
	}()
	var (
		best    time.Duration
		mapped  *net.UDPAddr
		sendErr error
	)
	next := time.NewTimer(0)
	defer next.Stop()
loop:
	for len(answered) < probesPerRelay {
		select {
		case <-ctx.Done():
			break loop
		case <-next.C:
			if len(sent) == probesPerRelay {
				if len(answered) > 0 {
					break loop
				}
				next.Reset(probeGap) // look again, until ctx ends
				continue
			}
			req, tx, err := newRequest()
			if err != nil {
				return 0, nil, err
			}
			forgets = append(forgets, s.expect(tx, ch))
			sent[tx] = time.Now()
			if _, err := s.pc.WriteTo(req, a); err != nil {
				sendErr = fmt.Errorf("send Binding request to %s: %w", a, err)
			}
			next.Reset(probeGap)
		case got := <-ch:
			at, ok := sent[got.pkt.tx]
			if !ok || got.pkt.request || answered[got.pkt.tx] {
				continue
			}
			answered[got.pkt.tx] = true
			if rtt := got.at.Sub(at); mapped == nil || rtt < best {
				best = rtt
			}
			if mapped == nil {
				mapped = got.pkt.mapped
			}
		}
	}
	if mapped == nil {
		if sendErr != nil {
			return 0, nil, sendErr
		}
		return 0, nil, fmt.Errorf("no answer from %s over UDP", a)
	}
	return best, mapped, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// isLocal reports whether ip is one of this host's interface addresses.
func isLocal(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
