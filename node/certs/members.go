package certs

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/protocol"
)

// maxMembers bounds the certificates held: past it, an expired one goes
// first, else any one whose peer does not own its name.
const maxMembers = 1 << 14

// Members are the certificates of the peers admitted in this session, by
// peer ID and by name. Two certificates with one name and different peer
// IDs: the newer one (later not_before; then the higher serial, so every
// node picks the same) owns the name, and the conflict is logged.
type Members struct {
	m *Manager

	mu     sync.Mutex
	byPeer map[peer.ID]*cert.Certificate
	byName map[string]peer.ID
}

func newMembers(m *Manager) *Members {
	return &Members{m: m, byPeer: map[peer.ID]*cert.Certificate{}, byName: map[string]peer.ID{}}
}

// newer reports whether a supersedes b for their name.
func newer(a, b *cert.Certificate) bool {
	if !a.NotBefore.Equal(b.NotBefore) {
		return a.NotBefore.After(b.NotBefore)
	}
	return bytes.Compare(a.Serial[:], b.Serial[:]) > 0
}

// Admit records the verified certificate c of p. owns says whether p now
// owns c's name; displaced is the peer that owned it before and lost it to
// p ("" if none).
func (ms *Members) Admit(p peer.ID, c *cert.Certificate) (owns bool, displaced peer.ID) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if old, ok := ms.byPeer[p]; ok && old.Name != c.Name && ms.byName[old.Name] == p {
		delete(ms.byName, old.Name) // renamed by a new certificate
	}
	if _, ok := ms.byPeer[p]; !ok && len(ms.byPeer) >= maxMembers {
		ms.evictLocked()
	}
	ms.byPeer[p] = c
	q, taken := ms.byName[c.Name]
	switch {
	case !taken || q == p:
		ms.byName[c.Name] = p
		return true, ""
	case newer(c, ms.byPeer[q]):
		ms.byName[c.Name] = p
		ms.m.cfg.Logger.Warn("member name conflict: the newer certificate wins", "name", c.Name,
			"winner", p, "winner_serial", c.Serial, "loser", q, "loser_serial", ms.byPeer[q].Serial)
		return true, q
	default:
		ms.m.cfg.Logger.Warn("member name conflict: the newer certificate wins", "name", c.Name,
			"winner", q, "winner_serial", ms.byPeer[q].Serial, "loser", p, "loser_serial", c.Serial)
		return false, ""
	}
}

func (ms *Members) evictLocked() {
	now := ms.m.cfg.Now()
	var victim peer.ID
	for p, c := range ms.byPeer {
		if !now.Before(c.NotAfter) {
			victim = p
			break
		}
		if victim == "" && ms.byName[c.Name] != p {
			victim = p
		}
	}
	if victim == "" {
		for p := range ms.byPeer {
			victim = p
			break
		}
	}
	ms.dropLocked(victim)
}

func (ms *Members) dropLocked(p peer.ID) {
	c, ok := ms.byPeer[p]
	if !ok {
		return
	}
	delete(ms.byPeer, p)
	if ms.byName[c.Name] != p {
		return
	}
	delete(ms.byName, c.Name)
	// The name goes to the newest other holder, if any.
	var best peer.ID
	for q, qc := range ms.byPeer {
		if qc.Name == c.Name && (best == "" || newer(qc, ms.byPeer[best])) {
			best = q
		}
	}
	if best != "" {
		ms.byName[c.Name] = best
	}
}

// Get returns p's certificate.
func (ms *Members) Get(p peer.ID) (*cert.Certificate, bool) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	c, ok := ms.byPeer[p]
	return c, ok
}

// Lookup returns the peer that owns name.
func (ms *Members) Lookup(name string) (peer.ID, bool) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	p, ok := ms.byName[name]
	return p, ok
}

// Owns reports whether p owns the name of its certificate.
func (ms *Members) Owns(p peer.ID) bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	c, ok := ms.byPeer[p]
	return ok && ms.byName[c.Name] == p
}

// Vouch is the relay's check before it grants p a reservation or a
// circuit: p's certificate, admitted in the handshake, must still be valid
// and not revoked. A refusal is a *protocol.Refusal with its code.
func (ms *Members) Vouch(p peer.ID) error {
	c, ok := ms.Get(p)
	if !ok {
		return &protocol.Refusal{Code: protocol.CodeCertRequired, Reason: fmt.Sprintf(
			"%v: peer %s has no certificate admitted in this session", protocol.ErrCertRequired, p)}
	}
	if err := ms.m.stillValid(c, ms.m.cfg.Now()); err != nil {
		return protocol.CertRefusal(err)
	}
	return nil
}

// Invalid is a member whose certificate no longer holds.
type Invalid struct {
	Peer peer.ID
	Err  error // wraps cert.ErrExpired, cert.ErrRevoked or cert.ErrNotYetValid
}

// Sweep drops and returns the members whose certificate expired or was
// revoked by now.
func (ms *Members) Sweep(now time.Time) []Invalid {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	var out []Invalid
	for p, c := range ms.byPeer {
		if err := ms.m.stillValid(c, now); err != nil {
			out = append(out, Invalid{Peer: p, Err: err})
		}
	}
	for _, iv := range out {
		ms.dropLocked(iv.Peer)
	}
	return out
}

// Recheck makes Run check the members' certificates at once, not at the
// next tick: for a caller whose revocation list just changed, so that
// revoked members are disconnected within moments. It never blocks.
func (m *Manager) Recheck() {
	if m == nil {
		return
	}
	select {
	case m.kick <- struct{}{}:
	default: // a check is due already
	}
}

// Run checks, every SweepEvery (and at each Recheck) until ctx ends, this node's own certificate
// (re-reading a renewed file, logging expiry warnings; renewed is called
// once a renewed certificate is in use) and its members' (handing each
// that no longer holds to invalid, which closes its connections).
func (m *Manager) Run(ctx context.Context, renewed func(), invalid func(Invalid)) {
	t := time.NewTicker(m.cfg.SweepEvery)
	defer t.Stop()
	last := m.Own().Serial
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
		}
		now := m.cfg.Now()
		m.warnExpiry(now)
		if s := m.Own().Serial; s != last {
			last = s
			renewed()
		}
		for _, iv := range m.Members.Sweep(now) {
			invalid(iv)
		}
	}
}
