package node

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Prune runs the periodic clean-up as if the clock read now.
func (n *Node) Prune(now time.Time) { n.prune(now) }

// SetMaxHeldStrangers changes how many strangers may wait out their grace
// at once, until the test ends.
func SetMaxHeldStrangers(t interface{ Cleanup(func()) }, n int64) {
	old := maxHeldStrangers
	maxHeldStrangers = n
	t.Cleanup(func() { maxHeldStrangers = old })
}

// TrustSync runs one trust exchange with p now.
func (n *Node) TrustSync(ctx context.Context, p peer.ID) error {
	return n.trustSvc.Gossip.Sync(ctx, p)
}
