package api_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/api"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// A listen address left unbound under ListenBestEffort shows in health's
// warnings and in status.
func TestListenFailuresShown(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/ws", taken.Addr().(*net.TCPAddr).Port)
	n := nt.Relay(t, func(c *node.Config) {
		c.ListenBestEffort = true
		c.Listen = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0"), ma.StringCast(busy)}
	})
	c := serve(t, n)
	ctx := nt.Context(t, 10*time.Second)
	h, err := c.Health(ctx)
	if err != nil || !h.OK || len(h.Warnings) != 1 || !strings.Contains(h.Warnings[0], busy) {
		t.Fatalf("health = %+v, %v; want ok with a warning naming %s", h, err, busy)
	}
	var st api.StatusReply
	if err := c.Do(ctx, http.MethodGet, "/v1/status", nil, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.ListenFailed) != 1 || !strings.Contains(st.ListenFailed[0], busy) || st.PeerID != n.ID().String() {
		t.Fatalf("status: listen_failed %q, peer %s", st.ListenFailed, st.PeerID)
	}
}
