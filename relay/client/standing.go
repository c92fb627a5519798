package client

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/events"
)

// Standing keeps the last events.EvtRelay of each relay: what status and
// health report. It is fed from the event bus, so it agrees with every
// other reader of those events.
type Standing struct {
	mu sync.Mutex
	m  map[peer.ID]events.EvtRelay
}

// NewStanding returns an empty standing.
func NewStanding() *Standing { return &Standing{m: map[peer.ID]events.EvtRelay{}} }

// Put records ev and returns the relay's previous event.
func (s *Standing) Put(ev events.EvtRelay) (prev events.EvtRelay) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev = s.m[ev.Relay]
	s.m[ev.Relay] = ev
	return prev
}

// RelayReport is one relay's standing as status shows it.
type RelayReport struct {
	Relay string            `json:"relay"`
	State events.RelayState `json:"state"` // reserved, refused, unreachable, connecting
	// Reason says why a relay is refused or unreachable.
	Reason    string     `json:"reason,omitempty"`
	Expires   *time.Time `json:"expires,omitempty"`
	NextRetry *time.Time `json:"next_retry,omitempty"`
}

// Report lists relays in the order given, each as its last event left it
// (connecting before any).
func (s *Standing) Report(relays []peer.AddrInfo) []RelayReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []RelayReport{}
	for _, r := range relays {
		rr := RelayReport{Relay: r.ID.String(), State: events.RelayConnecting}
		if ev, ok := s.m[r.ID]; ok {
			rr.State, rr.Reason = ev.State, ev.Reason
			rr.Expires, rr.NextRetry = timeOrNil(ev.Expires), timeOrNil(ev.NextRetry)
		}
		out = append(out, rr)
	}
	return out
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
