package topics

import (
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A peer that goes away without leaving its topics (a crash, a cut
// network) leaves the mesh view too: gossipsub drops it from its meshes
// on OnClosedOutboundStream with no Prune, so without this the view would
// grow with every peer that ever left.
func TestMeshViewForgetsClosedPeer(t *testing.T) {
	s := &Service{}
	tr := tracer{s}
	p, q := peer.ID("p"), peer.ID("q")
	tr.Graft(p, "a")
	tr.Graft(p, "b")
	tr.Graft(q, "a")
	tr.OnClosedOutboundStream(p)
	if got := s.mesh.peers("a"); !slices.Equal(got, []string{q.String()}) {
		t.Fatalf("mesh of a after p's stream closed = %v, want only q", got)
	}
	if got := s.mesh.peers("b"); len(got) != 0 {
		t.Fatalf("mesh of b after p's stream closed = %v, want none", got)
	}
	if len(s.mesh.m) != 1 {
		t.Fatalf("mesh view holds %d topics, want 1 (b emptied)", len(s.mesh.m))
	}
	tr.Prune(q, "a")
	if len(s.mesh.m) != 0 {
		t.Fatalf("mesh view holds %d topics after the last prune, want 0", len(s.mesh.m))
	}
}
