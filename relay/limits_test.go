package relay_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/events"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/relay"
)

// The relay's host limits grow with its reservation cap, so the cap can be
// reached: libp2p's defaults stop at about 256 connections.
func TestLimitsScaleWithReservations(t *testing.T) {
	small, big := relay.DefaultConfig(), relay.DefaultConfig()
	small.MaxReservations, big.MaxReservations = 100, 10000
	s, b := relay.LimitsFor(small), relay.LimitsFor(big)
	if b.ConnsInbound < big.MaxReservations || b.ConnMgrLow <= big.MaxReservations || b.ConnMgrHigh < b.ConnMgrLow {
		t.Errorf("limits for 10,000 reservations: %+v", b)
	}
	if b.FD < b.ConnsInbound || b.Streams < 2*big.MaxReservations {
		t.Errorf("limits for 10,000 reservations leave too few descriptors or streams: %+v", b)
	}
	if s.ConnsInbound >= b.ConnsInbound {
		t.Errorf("limits do not scale: %d inbound for 100, %d for 10,000", s.ConnsInbound, b.ConnsInbound)
	}
}

// A reservation refused by a limit is counted by limit, shown in status,
// and logged once per interval however often the peer retries; members
// are protected from the connection manager's trims.
func TestRelayRefusalsCounted(t *testing.T) {
	for _, tc := range []struct {
		limit string
		cfg   func(*relay.Config)
	}{
		{"max-reservations", func(c *relay.Config) { c.MaxReservations = 2 }},
		{"max-reservations-per-ip", func(c *relay.Config) { c.MaxReservationsPerIP = 2 }},
	} {
		t.Run(tc.limit, func(t *testing.T) {
			logs := &nt.LogRecorder{Level: 0}
			r := nt.Relay(t, nt.WithRelayConfig(tc.cfg), nt.WithLogger(logs.Logger()))
			relays := []ma.Multiaddr{nt.WSAddr(t, r)}
			a, b := nt.Peer(t, relays), nt.Peer(t, relays)
			nt.Eventually(t, 10*time.Second, "two reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
			c := nt.Peer(t, relays)
			nt.Eventually(t, 10*time.Second, "third refused, twice", func() bool {
				rs := c.Status().Relays
				return len(rs) == 1 && rs[0].State == events.RelayRefused && r.Status().Service.Refusals[tc.limit] >= 2
			})
			if rs := c.Status().Relays[0]; !strings.Contains(rs.Reason, "RESERVATION_REFUSED") {
				t.Errorf("refused peer's reason %q does not name the refusal", rs.Reason)
			}
			if st := r.Status().Service; st.Reservations != 2 {
				t.Errorf("relay holds %d reservations, want 2", st.Reservations)
			}
			lines := 0
			for _, l := range logs.Records() {
				if strings.Contains(l, "limit reached") && strings.Contains(l, "limit="+tc.limit+" ") {
					lines++
				}
			}
			if lines != 1 {
				t.Errorf("%d log lines for the limit over repeated refusals, want 1: %q", lines, logs.Records())
			}
			if !r.Host().ConnManager().IsProtected(a.ID(), "overlay-member") {
				t.Errorf("a reserved member is not protected from trimming")
			}
		})
	}
}

// Peers behind one NAT share an IP: the relay takes as many connections
// from one IP as it takes reservations, not libp2p's default 8, and counts
// what it refuses beyond that.
func TestPerIPConnectionLimitFollowsReservations(t *testing.T) {
	cfg := relay.DefaultConfig()
	cfg.MaxReservationsPerIP = 20
	l := relay.LimitsFor(cfg)
	if l.ConnsPerIP < cfg.MaxReservationsPerIP || l.ConnBurstPerIP < cfg.MaxReservationsPerIP {
		t.Fatalf("per-IP limits %+v below %d reservations per IP", l, cfg.MaxReservationsPerIP)
	}
	ref := relay.NewRefusals(nil)
	rm, err := l.ResourceManager(ref)
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	from := ma.StringCast("/ip4/198.51.100.7/tcp/4000")
	opened := 0
	for range l.ConnsPerIP + 5 {
		if _, err := rm.OpenConnection(network.DirInbound, true, from); err == nil {
			opened++
		}
	}
	if opened != l.ConnsPerIP {
		t.Errorf("opened %d connections from one IP, want %d", opened, l.ConnsPerIP)
	}
	if got := ref.Counts()["rcmgr-conns-per-ip"] + ref.Counts()["rcmgr-conn-rate-per-ip"]; got != 5 {
		t.Errorf("counted %d per-IP refusals, want 5: %v", got, ref.Counts())
	}
}

// A big relay's identify service takes a join burst's streams: its limit
// grows with the relay's reservations, past libp2p's default.
func TestIdentifyServiceScalesWithReservations(t *testing.T) {
	cfg := relay.DefaultConfig()
	cfg.MaxReservations = 10000
	rm, err := relay.LimitsFor(cfg).ResourceManager(relay.NewRefusals(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	for i := range 1000 {
		s, err := rm.OpenStream(peer.ID(fmt.Sprintf("joining-peer-%d", i)), network.DirInbound)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		defer s.Done()
		if err := s.SetProtocol(identify.ID); err != nil {
			t.Fatalf("identify stream %d of a join burst refused by the protocol: %v", i, err)
		}
		if err := s.SetService(identify.ServiceName); err != nil {
			t.Fatalf("identify stream %d of a join burst refused: %v", i, err)
		}
	}
}
