package tun

import (
	"net/netip"
	"testing"
)

// TestUserspaceSelfCheck starts a stack alone: what the proxies need of
// netstack (listen, dial, half-close between its own addresses) holds.
func TestUserspaceSelfCheck(t *testing.T) {
	u, err := NewUserspace([]netip.Addr{netip.MustParseAddr("100.64.7.7"), netip.MustParseAddr("fd5e:1::7")}, 1280)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if len(u.Addrs()) != 2 {
		t.Errorf("addrs %v", u.Addrs())
	}
	if _, err := NewUserspace([]netip.Addr{{}}, 1280); err == nil {
		t.Error("stack without address started")
	}
}
