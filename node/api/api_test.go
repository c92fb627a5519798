package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/api"
	"github.com/overlay-net/overlay/node/book"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
)

func serve(t *testing.T, n *node.Node) *api.Client {
	t.Helper()
	s, err := api.Listen("127.0.0.1:0", n, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return api.NewClient(s.Addr())
}

func apiCode(err error) int {
	var ae *api.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

func TestAPI(t *testing.T) {
	r := nt.Relay(t)
	a := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r)})
	b := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r)})
	ca, cb := serve(t, a), serve(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	nt.Eventually(t, 10*time.Second, "a healthy, b reserved", func() bool {
		h, err := ca.Health(ctx)
		return err == nil && h.OK && nt.Reserved(b, 1)
	})
	st, err := ca.Status(ctx)
	if err != nil || st.PeerID != a.ID().String() || st.Role != protocol.RolePrivate || len(st.Reservations) != 1 ||
		st.Reservations[0].Relay != r.ID().String() || len(st.Addrs.Relayed) == 0 || st.Network != node.DefaultNetwork {
		t.Fatalf("status = %+v, %v", st, err)
	}
	p, err := ca.Connect(ctx, b.ID().String(), 10*time.Second)
	if err != nil || p.State != book.StateMember || p.Path != book.PathRelayed {
		t.Fatalf("connect = %+v, %v", p, err)
	}
	peers, err := ca.Peers(ctx)
	if err != nil || len(peers) != 2 {
		t.Fatalf("peers = %+v, %v", peers, err)
	}
	if _, err := ca.Send(ctx, b.ID().String(), []byte{0xff, 0x00, 'b', 'i', 'n'}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	msgs, err := cb.Inbox(ctx, 0)
	if err != nil || len(msgs) != 1 || string(msgs[0].Data) != "\xff\x00bin" || msgs[0].From != a.ID() {
		t.Fatalf("inbox = %+v, %v (binary data must survive the JSON round trip)", msgs, err)
	}

	_, err = ca.Send(ctx, b.ID().String(), make([]byte, protocol.MaxMessageSize+1), 5*time.Second)
	if apiCode(err) != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized send: %v, want 413", err)
	}
	_, err = ca.Send(ctx, "not-a-peer-id", []byte("x"), 5*time.Second)
	if apiCode(err) != http.StatusBadRequest {
		t.Errorf("bad peer ID: %v, want 400", err)
	}
	_, err = ca.Connect(ctx, "/ip4/127.0.0.1/tcp/1", 5*time.Second)
	if apiCode(err) == 0 || !strings.Contains(err.Error(), "/p2p/") {
		t.Errorf("connect to address without peer ID: %v, want an error naming /p2p/", err)
	}
	if err := ca.Do(ctx, http.MethodPost, "/v1/send", "{", nil); apiCode(err) != http.StatusBadRequest {
		t.Errorf("malformed JSON: %v, want 400", err)
	}

	// Benchmarks split a node's memory into stacks and live heap from this.
	rt, err := ca.RuntimeAfterGC(ctx)
	if err != nil || rt.Goroutines == 0 || rt.HeapAlloc == 0 || rt.StackInuse == 0 {
		t.Errorf("runtime = %+v, %v: want goroutines, live heap and stacks", rt, err)
	}

	// A private node without a reservation is unhealthy.
	lonely := nt.Peer(t, []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1/ws/p2p/" + r.ID().String())})
	h, err := serve(t, lonely).Health(ctx)
	if err != nil || h.OK {
		t.Errorf("health of a peer with no reservation = %+v, %v", h, err)
	}
}

func TestClientUnreachable(t *testing.T) {
	_, err := api.NewClient("127.0.0.1:1").Status(context.Background())
	if !errors.Is(err, api.ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable", err)
	}
}

func apiListen(n *node.Node) (*api.Server, error) { return api.Listen("127.0.0.1:0", n, nil) }
