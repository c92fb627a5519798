package path

import (
	"fmt"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"

	"github.com/overlay-net/overlay/node/book"
)

// manager is a path manager on a real host listening on loopback TCP.
func manager(t *testing.T, wsOnly bool) *Manager {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Host: h, Book: book.New(book.Policy{}), WebSocketOnly: wsOnly,
		Trusted: func(peer.ID) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		h.Close()
	})
	return m
}

// The punch record behind each reason, fed as libp2p's hole-punch service
// feeds it: through the puncher's Trace.
func TestWhyRelayed(t *testing.T) {
	other := peer.ID("other")
	if w := manager(t, true).Why(other, LocalNAT{}); w.Reason != WhyWSOnly {
		t.Errorf("ws-only node: %+v", w)
	}

	m := manager(t, false)
	if w := m.Why(other, LocalNAT{}); w.Reason != WhyNoPublicAddr {
		t.Errorf("before punching starts: %+v", w)
	}
	m.startPunching()
	if w := m.Why(other, LocalNAT{}); w.Reason != WhyPeerCannotPunch {
		t.Errorf("peer without /libp2p/dcutr: %+v", w)
	}
	if err := m.cfg.Host.Peerstore().AddProtocols(other, holepunch.Protocol); err != nil {
		t.Fatal(err)
	}
	if w := m.Why(other, LocalNAT{}); w.Reason != WhyNotTried || w.Attempts != 0 || w.LastPunch != nil {
		t.Errorf("no punch yet: %+v", w)
	}

	var outcomes []PunchOutcome
	m.ObservePunches(func(o PunchOutcome) { outcomes = append(outcomes, o) })
	for i := range 2 {
		m.punch.Trace(&holepunch.Event{Remote: other, Evt: &holepunch.StartHolePunchEvt{}})
		m.punch.Trace(&holepunch.Event{Remote: other, Evt: &holepunch.EndHolePunchEvt{
			Success: false, Error: fmt.Sprintf("all retries for hole punch with peer failed (%d)", i)}})
	}
	w := m.Why(other, LocalNAT{})
	if w.Reason != WhyPunchFailed || w.Attempts != 2 || w.Failures != 2 || w.LastPunch == nil ||
		w.LastError != "all retries for hole punch with peer failed (1)" || !strings.Contains(w.Detail, "2 of 2") {
		t.Errorf("two failed punches: %+v", w)
	}
	if w := m.Why(other, LocalNAT{Symmetric: true}); w.Reason != WhySymmetric || w.Failures != 2 {
		t.Errorf("failed, behind a symmetric NAT: %+v", w)
	}
	if w := m.Why(other, LocalNAT{UDPBlocked: true}); w.Reason != WhyUDPBlocked {
		t.Errorf("failed, UDP blocked: %+v", w)
	}
	m.punch.Trace(&holepunch.Event{Remote: other, Evt: &holepunch.ProtocolErrorEvt{Error: "stream reset"}})
	if w := m.Why(other, LocalNAT{}); w.Failures != 3 || w.LastError != "protocol error: stream reset" {
		t.Errorf("protocol error: %+v", w)
	}
	m.punch.Trace(&holepunch.Event{Remote: other, Evt: &holepunch.StartHolePunchEvt{}})
	m.punch.Trace(&holepunch.Event{Remote: other, Evt: &holepunch.EndHolePunchEvt{Success: true}})
	if w := m.Why(other, LocalNAT{}); w.Reason != WhyDirectLost || w.LastError != "" {
		t.Errorf("punched, yet relayed: %+v", w)
	}
	want := []PunchOutcome{PunchFailure, PunchFailure, PunchProtocolError, PunchSuccess}
	if fmt.Sprint(outcomes) != fmt.Sprint(want) {
		t.Errorf("observed outcomes %v, want %v", outcomes, want)
	}
	// Another manager keeps its own record.
	if w := manager(t, false).Why(other, LocalNAT{}); w.Attempts != 0 {
		t.Errorf("a second manager sees the first one's punches: %+v", w)
	}
}

// The record is bounded: past maxPunchRecords peers the oldest goes.
func TestPunchRecordsBounded(t *testing.T) {
	m := manager(t, false)
	for i := range maxPunchRecords + 10 {
		m.punch.Trace(&holepunch.Event{Remote: peer.ID(fmt.Sprint(i)), Evt: &holepunch.StartHolePunchEvt{}})
	}
	l := logOf(m.punch)
	l.mu.Lock()
	n := len(l.peers)
	l.mu.Unlock()
	if n != maxPunchRecords {
		t.Fatalf("%d peers recorded, want %d", n, maxPunchRecords)
	}
}
