package topics

import (
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Score thresholds: a peer below 0 leaves the mesh at the next heartbeat;
// below gossipThreshold it gets no gossip, below publishThreshold none of
// this node's messages, and below graylistThreshold everything it sends
// is ignored. One refused message (invalidWeight) takes a peer to -100,
// two to -400: a member that floods or sends what the validator refuses
// is out of the mesh at once and graylisted at its second.
const (
	gossipThreshold    = -100
	publishThreshold   = -200
	graylistThreshold  = -300
	invalidWeight      = -100
	firstDeliveryScore = 1
)

// scoreParams are the peer score parameters. IP colocation is off:
// members behind one relay all appear at the relay's address.
func scoreParams() (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	p := &pubsub.PeerScoreParams{
		Topics:                    map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap:             100,
		AppSpecificScore:          func(peer.ID) float64 { return 0 },
		AppSpecificWeight:         1,
		IPColocationFactorWeight:  0,
		BehaviourPenaltyWeight:    -10,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:             time.Second,
		DecayToZero:               0.01,
		RetainScore:               10 * time.Minute,
	}
	t := &pubsub.PeerScoreThresholds{
		GossipThreshold:             gossipThreshold,
		PublishThreshold:            publishThreshold,
		GraylistThreshold:           graylistThreshold,
		AcceptPXThreshold:           10,
		OpportunisticGraftThreshold: 2,
	}
	return p, t
}

// topicScoreParams score a peer on one topic: a little for time in the
// mesh and for messages it delivered first, much against every refused
// message (squared, decaying over an hour). Mesh delivery rates are not
// scored: a quiet topic would punish every peer.
func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                     1,
		TimeInMeshWeight:                0.01,
		TimeInMeshQuantum:               time.Second,
		TimeInMeshCap:                   300,
		FirstMessageDeliveriesWeight:    firstDeliveryScore,
		FirstMessageDeliveriesDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:       50,
		MeshMessageDeliveriesDecay:      pubsub.ScoreParameterDecay(time.Minute),
		MeshMessageDeliveriesActivation: time.Second,
		MeshMessageDeliveriesWindow:     10 * time.Millisecond,
		MeshMessageDeliveriesCap:        1,
		MeshMessageDeliveriesThreshold:  1,
		MeshFailurePenaltyDecay:         pubsub.ScoreParameterDecay(time.Minute),
		InvalidMessageDeliveriesWeight:  invalidWeight,
		InvalidMessageDeliveriesDecay:   pubsub.ScoreParameterDecay(time.Hour),
	}
}
