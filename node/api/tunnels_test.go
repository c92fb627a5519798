package api_test

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node/api"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// The tunnel endpoints: expose the API's own port on b (any TCP service
// will do), forward a port of a to it, fetch b's status through it, list
// and remove both.
func TestTunnelEndpoints(t *testing.T) {
	r := nt.Relay(t)
	a := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r)})
	b := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r)})
	ca, cb := serve(t, a), serve(t, b)
	ctx := nt.Context(t, 30*time.Second)
	nt.Eventually(t, 10*time.Second, "both reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })

	bAPI := cbAddr(t, cb)
	if _, err := cb.Expose(ctx, api.ExposeRequest{Name: "api", Target: bAPI, Allow: []string{a.ID().String()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Expose(ctx, api.ExposeRequest{Name: "bad name", Target: bAPI}); apiCode(err) != http.StatusBadRequest {
		t.Fatalf("bad name: %v", err)
	}
	for _, name := range []string{".", ".."} {
		if _, err := cb.Expose(ctx, api.ExposeRequest{Name: name, Target: bAPI}); apiCode(err) != http.StatusBadRequest {
			t.Fatalf("name %q: %v", name, err)
		}
	}
	if _, err := cb.Expose(ctx, api.ExposeRequest{Name: "x", Target: "127.0.0.1:0"}); apiCode(err) != http.StatusBadRequest {
		t.Fatalf("port 0: %v", err)
	}
	if _, err := cb.Expose(ctx, api.ExposeRequest{Name: "api", Target: bAPI}); apiCode(err) != http.StatusConflict {
		t.Fatalf("expose of an exposed name: %v, want 409", err)
	}
	if res, err := cb.Expose(ctx, api.ExposeRequest{Name: "api", Target: bAPI, Allow: []string{a.ID().String()}, Replace: true}); err != nil || !res.Replaced {
		t.Fatalf("replace: %+v, %v", res, err)
	}
	if _, err := cb.Expose(ctx, api.ExposeRequest{Name: "x", Target: bAPI, Allow: []string{"nope"}}); apiCode(err) != http.StatusBadRequest {
		t.Fatalf("bad allow: %v", err)
	}
	es, err := cb.Exposures(ctx)
	if err != nil || len(es) != 1 || es[0].Name != "api" || len(es[0].Allow) != 1 {
		t.Fatalf("exposures = %+v, %v", es, err)
	}
	f, err := ca.Forward(ctx, api.ForwardRequest{Listen: "127.0.0.1:0", Peer: b.ID().String(), Service: "api"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := api.NewClient(f.Listen).Status(ctx)
	if err != nil || st.PeerID != b.ID().String() {
		t.Fatalf("status of b through the forward: %+v, %v", st.PeerID, err)
	}
	fs, err := ca.Forwards(ctx)
	if err != nil || len(fs) != 1 || fs[0].Total != 1 || fs[0].Service != "api" {
		t.Fatalf("forwards = %+v, %v", fs, err)
	}
	if err := ca.Unforward(ctx, f.Listen); err != nil {
		t.Fatal(err)
	}
	if err := ca.Unforward(ctx, f.Listen); apiCode(err) != http.StatusNotFound {
		t.Fatalf("second unforward: %v", err)
	}
	if c, err := net.DialTimeout("tcp", f.Listen, time.Second); err == nil {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("the port still answers after unforward")
		}
		c.Close()
	}
	if err := cb.Unexpose(ctx, "api"); err != nil {
		t.Fatal(err)
	}
	if err := cb.Unexpose(ctx, "api"); apiCode(err) != http.StatusNotFound {
		t.Fatalf("second unexpose: %v", err)
	}
}

func cbAddr(t *testing.T, c *api.Client) string {
	t.Helper()
	return c.Addr()
}
