package topics

import "github.com/libp2p/go-libp2p/core/peer"

// relayWish is a topic a peer announced it follows.
type relayWish struct {
	topic string
	from  peer.ID
}

// wantRelay asks route to relay topic for from; it never blocks
// (gossipsub's event loop calls it), and a full queue drops the wish.
func (s *Service) wantRelay(topic string, from peer.ID) {
	select {
	case s.relayQ <- relayWish{topic, from}:
	default:
	}
}

// route relays the topics members follow, up to Limits.MaxTopics: a
// stranger's announcements cannot take up the room.
func (s *Service) route() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case w := <-s.relayQ:
			if s.relaying(w.topic) {
				continue
			}
			if !s.forwarderIsMember(s.ctx, w.from) {
				continue
			}
			if err := s.relayTopic(w.topic); err != nil {
				s.log.Debug("relay topic", "topic", w.topic, "err", err)
			}
		}
	}
}

// relaying reports whether the node relays topic already.
func (s *Service) relaying(name string) bool {
	s.mu.Lock()
	t := s.topics[name]
	s.mu.Unlock()
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.relay != nil
}

func (s *Service) relayTopic(name string) error {
	t, err := s.join(name)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.relay != nil || t.stopped {
		return nil
	}
	cancel, err := t.pt.Relay()
	if err != nil {
		return err
	}
	t.relay = cancel
	s.log.Debug("relaying topic", "topic", name)
	return nil
}
