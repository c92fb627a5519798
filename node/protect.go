package node

import "github.com/libp2p/go-libp2p/core/peer"

// protectTag keeps members' connections from the connection manager's
// trims: above its high watermark it cuts strangers, never members.
const protectTag = "overlay-member"

func (n *Node) protect(p peer.ID)   { n.host.ConnManager().Protect(p, protectTag) }
func (n *Node) unprotect(p peer.ID) { n.host.ConnManager().Unprotect(p, protectTag) }
