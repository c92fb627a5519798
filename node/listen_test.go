package node_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
)

func relayWithListen(t *testing.T, addrs ...string) (*node.Node, error) {
	t.Helper()
	return relayListening(t, false, addrs...)
}

func relayListening(t *testing.T, bestEffort bool, addrs ...string) (*node.Node, error) {
	t.Helper()
	cfg := node.DefaultConfig(protocol.RolePublic)
	cfg.ListenBestEffort = bestEffort
	cfg.Key, cfg.Logger, cfg.DisableDHT = nodetest.Key(t), nodetest.Logger(t), true
	cfg.Listen = nil
	for _, a := range addrs {
		cfg.Listen = append(cfg.Listen, ma.StringCast(a))
	}
	n, err := node.New(cfg)
	if err == nil {
		t.Cleanup(func() { n.Close() })
	}
	return n, err
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A node whose listen address is taken does not start, and says which
// address and why, even when its other addresses bind.
func TestListenTakenPortFails(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", taken.Addr().(*net.TCPAddr).Port)
	for _, tc := range []struct {
		name  string
		addrs []string
	}{
		{"tcp", []string{busy, "/ip4/127.0.0.1/tcp/0"}},
		{"ws", []string{"/ip4/127.0.0.1/tcp/0", busy + "/ws"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := relayWithListen(t, tc.addrs...)
			if err == nil {
				t.Fatalf("started with %s taken", busy)
			}
			if !strings.Contains(err.Error(), busy) || !strings.Contains(err.Error(), "address already in use") {
				t.Errorf("error %q does not name %s and the bind error", err, busy)
			}
		})
	}
}

// /tcp/P and /tcp/P/ws cannot both bind one port: the start fails naming
// the one that lost, rather than running without it.
func TestListenSamePortTCPAndWS(t *testing.T) {
	p := freePort(t)
	tcpA, wsA := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p), fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/ws", p)
	_, err := relayWithListen(t, wsA, tcpA)
	if err == nil {
		t.Fatalf("started with %s and %s on one port", wsA, tcpA)
	}
	if !strings.Contains(err.Error(), "listen on /ip4/127.0.0.1/tcp/") {
		t.Errorf("error %q names no address", err)
	}
}

// Every configured address is listened on: ports 0 and several of them.
func TestListenAll(t *testing.T) {
	n, err := relayWithListen(t, "/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws", "/ip4/127.0.0.1/udp/0/quic-v1")
	if err != nil {
		t.Fatal(err)
	}
	var got []ma.Multiaddr
	for _, a := range n.Host().Network().ListenAddresses() {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err != nil {
			got = append(got, a)
		}
	}
	if len(got) != 3 {
		t.Errorf("listening on %v, want 3 addresses", got)
	}
}

// With ListenBestEffort a taken address is listed, not fatal, as long as
// another binds; if none binds the start still fails.
func TestListenBestEffort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", taken.Addr().(*net.TCPAddr).Port)
	n, err := relayListening(t, true, busy, "/ip4/127.0.0.1/tcp/0")
	if err != nil {
		t.Fatalf("best effort: %v", err)
	}
	if f := n.ListenFailures(); len(f) != 1 || !strings.Contains(f[0], busy) || !strings.Contains(f[0], "address already in use") {
		t.Errorf("ListenFailures = %q, want %s and its error", f, busy)
	}
	if _, err := relayListening(t, true, busy, busy+"/ws"); err == nil {
		t.Error("best effort started with no address bound")
	}
}
