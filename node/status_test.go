package node_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
)

// Status names each relay's standing: reserved on a relay of this network,
// refused (with the refusal worded for this node) by a relay of another,
// unreachable where nothing listens; health and connect say why.
func TestStatusRelayStates(t *testing.T) {
	good := nt.Relay(t)
	other := nt.Relay(t, nt.WithNetwork("elsewhere"))
	deadID := peerIDOf(t)
	dead := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/ws/p2p/%s", nt.FreePort(t), deadID))
	a := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, good), nt.WSAddr(t, other), dead})

	want := map[string]events.RelayState{good.ID().String(): events.RelayReserved,
		other.ID().String(): events.RelayRefused, deadID.String(): events.RelayUnreachable}
	var st node.Status
	nt.Eventually(t, 15*time.Second, "every relay in its state", func() bool {
		st = a.Status()
		for _, r := range st.Relays {
			if want[r.Relay] != r.State {
				return false
			}
		}
		return len(st.Relays) == 3
	})
	refusal := `refused this node: the relay is on network "elsewhere", this node is on "overlay"`
	for _, r := range st.Relays {
		switch r.State {
		case events.RelayReserved:
			if r.Expires == nil || !r.Expires.After(time.Now()) || r.Reason != "" {
				t.Errorf("reserved relay: %+v, want a future expiry and no reason", r)
			}
		case events.RelayRefused:
			if r.Reason != refusal || r.NextRetry == nil {
				t.Errorf("refused relay: reason %q, next retry %v; want %q and a retry time", r.Reason, r.NextRetry, refusal)
			}
		case events.RelayUnreachable:
			if r.Reason == "" || r.NextRetry == nil {
				t.Errorf("unreachable relay: %+v, want a reason and a retry time", r)
			}
		}
	}
	if ok, why := a.Healthy(); !ok {
		t.Errorf("unhealthy with a reservation held: %s", why)
	}
	// The JSON that `overlay status --json` prints.
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var js struct {
		Relays []map[string]any `json:"relays"`
	}
	if err := json.Unmarshal(b, &js); err != nil || len(js.Relays) != 3 {
		t.Fatalf("status JSON %s: %v", b, err)
	}
	for _, r := range js.Relays {
		for _, k := range []string{"relay", "state"} {
			if _, ok := r[k]; !ok {
				t.Errorf("relay entry %v has no %q", r, k)
			}
		}
		if r["state"] == "refused" && (r["reason"] != refusal || r["next_retry"] == nil) {
			t.Errorf("refused relay as JSON: %v", r)
		}
		if r["state"] == "reserved" && r["expires"] == nil {
			t.Errorf("reserved relay as JSON: %v", r)
		}
	}

	// A node whose only relay refuses it is unhealthy, and says why; so
	// does a connect that would go through that relay.
	b2 := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, other)})
	nt.Eventually(t, 15*time.Second, "refused", func() bool {
		rs := b2.Status().Relays
		return len(rs) == 1 && rs[0].State == events.RelayRefused
	})
	if ok, why := b2.Healthy(); ok || !strings.Contains(why, refusal) {
		t.Errorf("health = %v, %q; want unhealthy naming %q", ok, why, refusal)
	}
	_, err = b2.Connect(nt.Context(t, 10*time.Second), a.ID().String())
	if err == nil || !strings.Contains(err.Error(), refusal) {
		t.Errorf("connect through the refusing relay: %v; want it to name %q", err, refusal)
	}
	if errors.Is(err, node.ErrRejected) {
		t.Errorf("connect error %v blames the target, not the relay", err)
	}
}

func peerIDOf(t *testing.T) peer.ID {
	t.Helper()
	id, err := peer.IDFromPrivateKey(nt.Key(t))
	if err != nil {
		t.Fatal(err)
	}
	return id
}
