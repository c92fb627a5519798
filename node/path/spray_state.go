package path

import (
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The sprayer's bookkeeping: bounds, the one spray slot, the packets
// awaited, and what peers said.

// allow counts an attempt with p, refusing past maxSprays within
// repunchWindow.
func (s *sprayer) allow(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	recent := within(s.tries[p], now, repunchWindow)
	if len(recent) >= maxSprays {
		s.tries[p] = recent
		return false
	}
	if _, ok := s.tries[p]; !ok && len(s.tries) >= maxSprayPeers {
		for id := range s.tries {
			delete(s.tries, id)
			break
		}
	}
	s.tries[p] = append(recent, now)
	return true
}

// watch registers ch for the packets of kind carrying token; the returned
// func forgets it.
func (s *sprayer) watch(kind byte, token [16]byte, ch chan netip.AddrPort) func() {
	k := hitKey{kind, token}
	s.mu.Lock()
	s.hits[k] = ch
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.hits, k)
		s.mu.Unlock()
	}
}

// noteLoud records that a punch is about to send UDP at full TTL towards
// p (prePunch.loud), for punchLoudFor at most.
func (s *sprayer) noteLoud(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.loud[p]; !ok && len(s.loud) >= maxSprayPeers {
		for id := range s.loud {
			delete(s.loud, id)
			break
		}
	}
	s.loud[p] = time.Now().Add(punchLoudFor)
}

// quietFor is how long to wait before an attempt with p so that the
// conntrack entries this node's last full-TTL UDP packets to p may have
// left on p's router have expired; 0 if none are known.
func (s *sprayer) quietFor(p peer.ID) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.loud[p]
	if !ok {
		return 0
	}
	return max(0, time.Until(at.Add(udpForget)))
}

func (s *sprayer) said(p peer.ID, st sprayStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.peerSaid[p]; !ok && len(s.peerSaid) >= maxSprayPeers {
		for id := range s.peerSaid {
			delete(s.peerSaid, id)
			break
		}
	}
	s.peerSaid[p] = st
}

// peerStatus is p's last answer to a spray request (or, on the easy side,
// what p's request said of its NAT); ok false if none.
func (s *sprayer) peerStatus(p peer.ID) (sprayStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.peerSaid[p]
	return st, ok
}

func (s *sprayer) startBusy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy {
		return false
	}
	s.busy = true
	return true
}

func (s *sprayer) endBusy() {
	s.mu.Lock()
	s.busy = false
	s.mu.Unlock()
}
