package node

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/tun"
)

// startTUN brings up the overlay interface (node/tun) when Config.TUN asks
// for one.
func (n *Node) startTUN() error {
	if n.cfg.TUN == nil {
		return nil
	}
	var own *cert.Certificate
	if n.certs != nil {
		own = n.certs.Own()
	}
	d := tun.Deps{Host: n.host, Members: tunSource{n}, Own: own, Logger: n.log}
	if n.trust != nil {
		d.Policy = n.trust
	}
	i, err := tun.Start(*n.cfg.TUN, d)
	if err != nil {
		return fmt.Errorf("start overlay interface: %w", err)
	}
	n.tun = i
	if reg := n.cfg.Metrics; reg != nil {
		if err := reg.Register(i.Collector()); err != nil {
			i.Close()
			n.tun = nil
			return fmt.Errorf("overlay interface metrics: %w", err)
		}
	}
	return nil
}

// TUN returns the node's overlay interface, nil without Config.TUN.
func (n *Node) TUN() *tun.Interface { return n.tun }

// tunSource is the node as the interface's member source: the peer book's
// members, with the certificates they presented.
type tunSource struct{ n *Node }

func (s tunSource) Known() []tun.Known {
	var out []tun.Known
	for _, p := range s.n.book.List() {
		if p.State != book.StateMember {
			continue
		}
		k := tun.Known{ID: p.ID, Name: p.Name}
		if s.n.certs != nil {
			k.Cert, _ = s.n.certs.Members.Get(p.ID)
		}
		out = append(out, k)
	}
	return out
}

func (s tunSource) IsMember(ctx context.Context, p peer.ID) bool { return s.n.IsMember(ctx, p) }

func (s tunSource) EnsureMember(ctx context.Context, p peer.ID) error {
	return s.n.EnsureMember(ctx, p)
}
