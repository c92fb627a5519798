package node

import (
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node/book"
)

// bookFileName is the peer book's file in the data directory.
const bookFileName = "peers.json"

func (n *Node) loadBook() (err error) {
	n.book, err = book.Open(n.bookPath(), n.cfg.Book, n.log)
	return err
}

// bookPath is the peer book's file, "" without a data directory.
func (n *Node) bookPath() string {
	if n.cfg.DataDir == "" {
		return ""
	}
	return filepath.Join(n.cfg.DataDir, bookFileName)
}

func (n *Node) saveBook() error {
	if n.bookPath() == "" || n.book == nil {
		return nil
	}
	_, err := n.book.Save(n.bookPath())
	return err
}

// pruneEvery is how often expired strangers leave the book and verdicts of
// peers long gone are forgotten.
const pruneEvery = time.Minute

// verdictLinger is how long a non-member's verdict outlives its last
// connection: long enough for a Connect waiting on it to read it.
const verdictLinger = time.Minute

func (n *Node) pruneLoop() {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			n.prune(now)
		}
	}
}

func (n *Node) prune(now time.Time) {
	connected := func(p peer.ID) bool { return n.host.Network().Connectedness(p) == network.Connected }
	// Strangers gone for good leave libp2p's peerstore too; the book keeps them.
	for _, p := range n.verdicts.Prune(now.Add(-verdictLinger), connected) {
		if !n.isRelay(p) {
			n.host.Peerstore().RemovePeer(p)
			n.host.Peerstore().ClearAddrs(p)
		}
	}
	if k := n.book.Evict(now, connected); k > 0 {
		n.log.Debug("peer book: strangers evicted", "count", k, "left", n.book.Len())
	}
}
