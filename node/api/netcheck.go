package api

import (
	"context"
	"net/http"
	"time"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/netcheck"
	"github.com/overlay-net/overlay/node/path"
)

// Peer is a peer book entry as /v1/peers answers it: for a member reached
// only through a relay, Why says why it is not reached directly.
type Peer struct {
	book.PeerInfo
	Why *path.Why `json:"why,omitempty"`
	// IPv4 and IPv6 are the member's overlay addresses, when this node
	// runs the overlay interface (node/tun).
	IPv4 string `json:"ipv4,omitempty"`
	IPv6 string `json:"ipv6,omitempty"`
}

// peers lists the book, with Why for relayed members.
func peers(n *node.Node) []Peer {
	list := n.Book().List()
	out := make([]Peer, len(list))
	addrs := tunAddrs(n)
	for i, p := range list {
		out[i] = Peer{PeerInfo: p}
		if m, ok := addrs[p.ID]; ok {
			out[i].IPv4, out[i].IPv6 = addrString(m.V4), addrString(m.V6)
		}
		if p.State == book.StateMember && p.Path == book.PathRelayed {
			w := n.WhyRelayed(p.ID)
			out[i].Why = &w
		}
	}
	return out
}

// NetCheckRequest asks for a netcheck run now.
type NetCheckRequest struct {
	Timeout string `json:"timeout,omitempty"` // Go duration; default 10s
}

func (s *Server) netcheckRoutes() {
	s.mux.HandleFunc("POST /v1/netcheck", func(w http.ResponseWriter, r *http.Request) {
		var req NetCheckRequest
		if !ReadJSON(w, r, &req) {
			return
		}
		ctx, cancel, ok := RequestContext(w, r, req.Timeout, 10*time.Second)
		if !ok {
			return
		}
		defer cancel()
		WriteJSON(w, http.StatusOK, s.n.NetCheck(ctx))
	})
}

// NetCheck asks the node to measure its NAT against its relays now.
func (c *Client) NetCheck(ctx context.Context, timeout time.Duration) (netcheck.Report, error) {
	var r netcheck.Report
	return r, c.Do(ctx, http.MethodPost, "/v1/netcheck", NetCheckRequest{Timeout: timeout.String()}, &r)
}
