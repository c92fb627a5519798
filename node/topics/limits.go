package topics

import (
	"fmt"
	"time"
)

// Limits bound what topics cost and what a peer may send.
type Limits struct {
	// Rate is how many messages per second an author may publish to one
	// topic, Burst how many at once. A local publisher waits for its turn;
	// a peer's messages above twice the burst are refused and count
	// against its score.
	Rate  float64
	Burst int
	// Buffer is each local follower's queue, in messages: a follower that
	// falls further behind loses messages (counted as dropped).
	Buffer int
	// MaxTopics bounds the topics this node joins, followed or relayed.
	MaxTopics int
	// Hold is how long a message that arrived ahead of its predecessors
	// from the same publisher waits for them before they count as missed:
	// longer than gossipsub's own retrieval (IHAVE/IWANT within its ~5 s
	// history) and than the lag between two paths, as when a relay stops
	// and the other path is seconds behind.
	Hold time.Duration
	// MaxSize is the largest message, in bytes, this node publishes or
	// accepts from a peer (a larger one is refused as malformed and counts
	// against its sender): at most MaxData. Every member of a network
	// should use the same.
	MaxSize int
	// History is how many gossipsub heartbeats (one a second) a message
	// stays in the gossip this node sends to peers outside its mesh
	// (IHAVE) and can still be asked for (IWANT). It recovers messages
	// lost on one path; a member cut off from every path is meshed again
	// on return and gets no gossip of what it missed, which it reports
	// missing. Each heartbeat of history holds that second's messages in
	// memory.
	History int
	// Backfill is how long this node keeps the messages it delivers or
	// relays (up to storeMessages and storeBytes for all topics), to
	// answer members that missed them (BackfillID); a follower that finds
	// a gap asks its peers for it. 0 turns both off: gaps are then only
	// reported missing.
	Backfill time.Duration
}

// MaxBackfill bounds Limits.Backfill.
const MaxBackfill = time.Hour

// MaxHistory bounds Limits.History: the message cache holds every message
// of the window.
const MaxHistory = 120

// DefaultLimits are the limits a node starts with. History is gossipsub's
// own default (3 heartbeats advertised).
func DefaultLimits() Limits {
	return Limits{Rate: 500, Burst: 1000, Buffer: 1024, MaxTopics: 64, Hold: 10 * time.Second,
		MaxSize: MaxData, History: 3, Backfill: 2 * time.Minute}
}

// Validate reports a limit that cannot work.
func (l Limits) Validate() error {
	if l.Rate <= 0 || l.Burst <= 0 || l.Buffer <= 0 || l.MaxTopics <= 0 || l.Hold <= 0 {
		return fmt.Errorf("topic limits must be positive (rate %v, burst %d, buffer %d, max topics %d, hold %s)",
			l.Rate, l.Burst, l.Buffer, l.MaxTopics, l.Hold)
	}
	if l.MaxSize <= 0 || l.MaxSize > MaxData {
		return fmt.Errorf("topic message size limit must be between 1 and %d bytes, not %d", MaxData, l.MaxSize)
	}
	if l.History < 1 || l.History > MaxHistory {
		return fmt.Errorf("topic history must be between 1 and %d heartbeats, not %d", MaxHistory, l.History)
	}
	if l.Backfill < 0 || l.Backfill > MaxBackfill {
		return fmt.Errorf("topic backfill must be between 0 (off) and %s, not %s", MaxBackfill, l.Backfill)
	}
	return nil
}
