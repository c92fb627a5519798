package trust

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
)

// TopicGuard is a node's topics.Policy (node/topics): the access policy's
// publish and follow rules, judged with this node as the "to" side, and
// no topic at all for a revoked peer. A policy without topic rules allows
// every member (cert.DecisionNoTopicRule).
type TopicGuard struct {
	s    *Store
	self peer.ID
}

// TopicGuard returns the topic guard of the node whose peer ID is self.
func (s *Store) TopicGuard(self peer.ID) TopicGuard { return TopicGuard{s, self} }

// MayJoin reports whether p may be in topic's mesh with this node and
// receive the topic from it.
func (g TopicGuard) MayJoin(p peer.ID, topic string) bool {
	if p == g.self {
		return true
	}
	return g.s.Revoked(p) == nil && g.s.Allow(p, g.self, cert.Action{Kind: cert.ActionFollow, Topic: topic}) == nil
}

// MayPublish reports whether a message author wrote to topic may be taken
// by this node (and by this node's own publisher, for author == self).
func (g TopicGuard) MayPublish(author peer.ID, topic string) bool {
	return g.s.Revoked(author) == nil && g.s.Allow(author, g.self, cert.Action{Kind: cert.ActionPublish, Topic: topic}) == nil
}
