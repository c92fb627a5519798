package node

import "time"

// Prune runs the periodic clean-up as if the clock read now.
func (n *Node) Prune(now time.Time) { n.prune(now) }
