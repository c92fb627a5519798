package path

import (
	"fmt"
	"runtime"
	"sync"
	"time"
	"weak"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
)

// WhyReason says in one word why a member is still reached through a relay.
type WhyReason string

const (
	// WhyWSOnly: this node runs --ws-only, it never punches.
	WhyWSOnly WhyReason = "ws-only"
	// WhyNoPublicAddr: hole punching has not started on this node: it
	// listens nowhere, or no trusted peer has reported its public address.
	WhyNoPublicAddr WhyReason = "no-public-address"
	// WhyPeerCannotPunch: the peer does not offer hole punching (/libp2p/dcutr):
	// --ws-only, no listen address, or no public address known to it yet.
	WhyPeerCannotPunch WhyReason = "peer-cannot-punch"
	// WhyNotTried: no hole punch with the peer yet. Only the side that
	// accepted the relayed connection starts one.
	WhyNotTried WhyReason = "not-tried"
	// WhyPunchFailed: the last punch failed (Failures, LastError).
	WhyPunchFailed WhyReason = "punch-failed"
	// WhyUDPBlocked: punches failed and netcheck found no UDP to the relays.
	WhyUDPBlocked WhyReason = "udp-blocked"
	// WhySymmetric: punches failed and netcheck found this node's NAT maps
	// a new port per destination, so the port the peer punches towards is
	// not the one it would meet.
	WhySymmetric WhyReason = "symmetric-nat"
	// WhyBothSymmetric: both NATs map a new port per destination (netcheck
	// here, the peer's spray answer there): neither punching nor spraying
	// can meet.
	WhyBothSymmetric WhyReason = "symmetric-nat-both"
	// WhyPeerSymmetric: the peer's NAT maps a new port per destination
	// (its spray request said so); this node sprays for it.
	WhyPeerSymmetric WhyReason = "peer-symmetric-nat"
	// WhyPeerUDPBlocked: the peer answered a spray request that it has no UDP.
	WhyPeerUDPBlocked WhyReason = "peer-udp-blocked"
	// WhyDirectLost: a punch succeeded, but the direct connection is gone.
	WhyDirectLost WhyReason = "direct-lost"
)

// LocalNAT is what netcheck knows of this node's NAT, for Why.
type LocalNAT struct {
	UDPBlocked, Symmetric bool
}

// Why explains a relayed member's path: a reason, and the punch record.
type Why struct {
	Reason    WhyReason  `json:"reason"`
	Detail    string     `json:"detail"`
	Attempts  int        `json:"punch_attempts"`
	Failures  int        `json:"punch_failures"`
	LastError string     `json:"last_error,omitempty"`
	LastPunch *time.Time `json:"last_punch,omitempty"`
}

// PunchOutcome is how one hole punch ended, for metrics.
type PunchOutcome string

const (
	PunchSuccess       PunchOutcome = "success"
	PunchFailure       PunchOutcome = "failure"
	PunchProtocolError PunchOutcome = "protocol-error"
)

// maxPunchRecords bounds the peers a punch log remembers; the one punched
// longest ago is forgotten first.
const maxPunchRecords = 1024

// punchLog records hole punches per peer for one Manager. It lives beside
// the puncher (keyed by it in punchLogs) so that the puncher's file stays
// as it is: holepunch.go's Trace feeds it with one call.
type punchLog struct {
	mu      sync.Mutex
	peers   map[peer.ID]*punchRecord
	observe func(PunchOutcome)
}

type punchRecord struct {
	attempts, failures, successes int
	lastErr                       string
	last                          time.Time
	lastOK                        bool
}

// punchLogs maps each live puncher to its log; an entry goes when its
// puncher is garbage collected.
var punchLogs sync.Map // weak.Pointer[puncher] -> *punchLog

func logOf(p *puncher) *punchLog {
	k := weak.Make(p)
	if l, ok := punchLogs.Load(k); ok {
		return l.(*punchLog)
	}
	l, loaded := punchLogs.LoadOrStore(k, &punchLog{peers: map[peer.ID]*punchRecord{}})
	if !loaded {
		runtime.AddCleanup(p, func(k weak.Pointer[puncher]) { punchLogs.Delete(k) }, k)
	}
	return l.(*punchLog)
}

// recordPunch notes a hole-punch event in p's log (called from Trace).
func recordPunch(p *puncher, evt *holepunch.Event) {
	var out PunchOutcome
	l := logOf(p)
	l.mu.Lock()
	r := l.peers[evt.Remote]
	if r == nil {
		if len(l.peers) >= maxPunchRecords {
			l.forgetOldest()
		}
		r = &punchRecord{}
		l.peers[evt.Remote] = r
	}
	switch e := evt.Evt.(type) {
	case *holepunch.StartHolePunchEvt:
		r.attempts++
	case *holepunch.EndHolePunchEvt:
		if e.Success {
			r.successes++
			r.lastOK, r.lastErr, out = true, "", PunchSuccess
		} else {
			r.failures++
			r.lastOK, r.lastErr, out = false, e.Error, PunchFailure
		}
	case *holepunch.ProtocolErrorEvt:
		r.failures++
		r.lastOK, r.lastErr, out = false, "protocol error: "+e.Error, PunchProtocolError
	default:
		l.mu.Unlock()
		return
	}
	r.last = time.Now()
	observe := l.observe
	l.mu.Unlock()
	if observe != nil && out != "" {
		observe(out)
	}
}

// forgetOldest drops the record punched longest ago; l.mu must be held.
func (l *punchLog) forgetOldest() {
	var oldest peer.ID
	var at time.Time
	for id, r := range l.peers {
		if oldest == "" || r.last.Before(at) {
			oldest, at = id, r.last
		}
	}
	delete(l.peers, oldest)
}

// ObservePunches calls fn with the outcome of every hole punch from now on
// (metrics); set it before the node connects.
func (m *Manager) ObservePunches(fn func(PunchOutcome)) {
	l := logOf(m.punch)
	l.mu.Lock()
	l.observe = fn
	l.mu.Unlock()
}

// Why explains why p, a member reached through a relay, is not reached
// directly; nat is what netcheck found about this node's NAT.
func (m *Manager) Why(p peer.ID, nat LocalNAT) Why {
	l := logOf(m.punch)
	l.mu.Lock()
	var rec punchRecord
	if r := l.peers[p]; r != nil {
		rec = *r
	}
	l.mu.Unlock()
	w := Why{Attempts: rec.attempts, Failures: rec.failures, LastError: rec.lastErr}
	if !rec.last.IsZero() {
		t := rec.last.UTC()
		w.LastPunch = &t
	}
	m.punch.mu.Lock()
	punching := m.punch.svc != nil
	m.punch.mu.Unlock()
	peerSaid, said := m.spray.peerStatus(p)
	if !said {
		peerSaid = sprayOK
	}
	sprays := m.SprayStats()
	failed := fmt.Sprintf("%d of %d hole punches failed", rec.failures, max(rec.attempts, rec.failures))
	if rec.lastErr != "" {
		failed += "; last: " + rec.lastErr
	}
	switch {
	case m.cfg.WebSocketOnly:
		w.Reason, w.Detail = WhyWSOnly, "this node runs --ws-only: it does not hole-punch"
	case !punching && rec.attempts == 0:
		w.Reason, w.Detail = WhyNoPublicAddr, "hole punching not started here: this node listens nowhere, or no relay or member has reported its public address yet"
	case rec.attempts == 0 && !m.peerPunches(p):
		w.Reason, w.Detail = WhyPeerCannotPunch, "the peer offers no hole punching (--ws-only, no listen address, or no public address known to it yet)"
	case rec.attempts == 0 && rec.failures == 0:
		w.Reason, w.Detail = WhyNotTried, "no hole punch tried yet (the side that accepted the relayed connection starts it)"
	case rec.lastOK:
		w.Reason, w.Detail = WhyDirectLost, fmt.Sprintf("hole punched %d times, but the direct connection did not last", rec.successes)
	case nat.UDPBlocked:
		w.Reason, w.Detail = WhyUDPBlocked, "netcheck: no UDP reaches the relays from here; "+failed
	case nat.Symmetric && peerSaid == sprayHardToo:
		w.Reason, w.Detail = WhyBothSymmetric, "symmetric NAT on both sides (netcheck here, the peer's answer there): a new port per destination on each, nothing to punch or spray towards; "+failed
	case peerSaid == sprayNoUDP:
		w.Reason, w.Detail = WhyPeerUDPBlocked, "the peer has no UDP, and TCP punching failed; "+failed
	case nat.Symmetric:
		w.Reason, w.Detail = WhySymmetric, fmt.Sprintf("netcheck: this node's NAT maps a new port per destination; %s; %d port sprays asked of peers so far (all peers)", failed, sprays.Attempts)
	case peerSaid == sprayHardToo:
		w.Reason, w.Detail = WhyPeerSymmetric, fmt.Sprintf("the peer's NAT maps a new port per destination; %s; %d port sprays made here (all peers), %d direct", failed, sprays.Attempts, sprays.Direct)
	default:
		w.Reason, w.Detail = WhyPunchFailed, failed
	}
	return w
}

// peerPunches reports whether p said (identify) it speaks DCUtR.
func (m *Manager) peerPunches(p peer.ID) bool {
	ps, err := m.cfg.Host.Peerstore().SupportsProtocols(p, holepunch.Protocol)
	return err == nil && len(ps) > 0
}
