package node

import (
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node/dial"
)

// ErrUnknownName is returned for a member name no certificate seen by this
// node carries.
var ErrUnknownName = errors.New("no member by that name")

// ResolvePeer turns what a user typed into a peer ID: a peer ID as is, or
// in certificate mode a member's name (issue 24). A name resolves to the
// peer that owns it now (the newest valid certificate among admitted
// members), else to the one the peer book last saw with it.
func (n *Node) ResolvePeer(s string) (peer.ID, error) {
	id, err := peer.Decode(s)
	if err == nil {
		return id, nil
	}
	if cert.ValidName(s) != nil {
		return "", fmt.Errorf("parse peer ID %q: %w", s, err)
	}
	if n.certs == nil {
		return "", fmt.Errorf("%q is neither a peer ID nor usable as a name: member names need certificate mode (--ca-pub, --cert)", s)
	}
	if id, ok := n.certs.Members.Lookup(s); ok {
		return id, nil
	}
	for _, pi := range n.book.List() {
		if pi.Name == s {
			return pi.ID, nil
		}
	}
	return "", fmt.Errorf("%w: %q (names come from the certificates of members this node has met)", ErrUnknownName, s)
}

// parseTarget is dial.ParseTarget that also takes a member's name.
func (n *Node) parseTarget(target string) (peer.AddrInfo, error) {
	ai, err := dial.ParseTarget(target)
	if err == nil || strings.HasPrefix(strings.TrimSpace(target), "/") {
		return ai, err
	}
	id, err := n.ResolvePeer(strings.TrimSpace(target))
	return peer.AddrInfo{ID: id}, err
}
