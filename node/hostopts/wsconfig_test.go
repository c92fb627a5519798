package hostopts

import (
	"testing"

	"github.com/overlay-net/overlay/internal/wstransport"
	"github.com/overlay-net/overlay/protocol"
	"github.com/overlay-net/overlay/relay"
)

func relayNode(maxRes, perIP int) *builder {
	n := &builder{}
	n.cfg.Role = protocol.RolePublic
	n.cfg.Relay = relay.DefaultConfig()
	n.cfg.Relay.MaxReservations, n.cfg.Relay.MaxReservationsPerIP = maxRes, perIP
	n.Gate = relay.LimitsFor(n.cfg.Relay).Gate(nil)
	return n
}

// A big relay's WebSocket caps, which refuse newcomers, stay above its
// gate's bounds, which evict silent connections for them; a default relay
// keeps the transport's defaults.
func TestWebSocketCapsAboveGate(t *testing.T) {
	c := relayNode(1024, 256).wsConfig()
	if c.MaxPending != wstransport.DefaultMaxPending || c.MaxPendingPerIP != wstransport.DefaultMaxPendingPerIP {
		t.Errorf("default relay: caps %d/%d, want the defaults %d/%d", c.MaxPending, c.MaxPendingPerIP,
			wstransport.DefaultMaxPending, wstransport.DefaultMaxPendingPerIP)
	}
	n := relayNode(10100, 10100)
	l := relay.LimitsFor(n.cfg.Relay)
	c = n.wsConfig()
	if c.MaxPending < 2*l.Pending || c.MaxPendingPerIP < 2*l.PendingPerIP {
		t.Errorf("10,000 reservations: caps %d/%d, want at least twice the gate's %d/%d",
			c.MaxPending, c.MaxPendingPerIP, l.Pending, l.PendingPerIP)
	}
	if c.MaxPendingPerIP <= wstransport.DefaultMaxPendingPerIP {
		t.Errorf("10,000 reservations: cap per IP %d not raised (gate: %d)", c.MaxPendingPerIP, l.PendingPerIP)
	}
}
