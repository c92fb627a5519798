package main_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// overlay netcheck on the built binary: a peer listening on QUIC measures
// itself against two relays on loopback, in text and in JSON; status shows
// the report.
func TestBinaryNetcheck(t *testing.T) {
	dir := t.TempDir()
	var relays []string
	for i := range 2 {
		name := fmt.Sprintf("relay%d", i)
		start(t, filepath.Join(dir, name), "relay", "--listen", "/ip4/127.0.0.1/tcp/0",
			"--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--addr-file", filepath.Join(dir, name+".addrs"))
		for _, l := range strings.Fields(waitFile(t, filepath.Join(dir, name+".addrs"))) {
			if strings.Contains(l, "/quic-v1/") {
				relays = append(relays, l)
			}
		}
	}
	if len(relays) != 2 {
		t.Fatalf("relays' QUIC addresses: %v", relays)
	}
	p := start(t, filepath.Join(dir, "peer"), "peer", "--relay", relays[0], "--relay", relays[1],
		"--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
	api := p.api(t)
	eventually(t, 20*time.Second, "peer healthy", func() error {
		_, err := overlay(t, "health", "--api", api)
		return err
	})
	out, err := overlay(t, "netcheck", "--json", "--api", api)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		UDP       bool   `json:"udp"`
		Varies    *bool  `json:"mapping_varies_by_dest"`
		Preferred string `json:"preferred"`
		Relays    []struct {
			RTT float64 `json:"rtt_ms"`
		} `json:"relays"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("netcheck --json: %v\n%s", err, out)
	}
	if !r.UDP || r.Varies == nil || *r.Varies || r.Preferred == "" || len(r.Relays) != 2 || r.Relays[0].RTT <= 0 || r.Relays[1].RTT <= 0 {
		t.Errorf("netcheck --json:\n%s", out)
	}
	out, err = overlay(t, "netcheck", "--api", api)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"UDP:              yes", "NAT class:        endpoint-independent", "preferred relay:  12D3", " ms "} {
		if !strings.Contains(out, want) {
			t.Errorf("overlay netcheck lacks %q:\n%s", want, out)
		}
	}
	out, err = overlay(t, "status", "--api", api)
	if err != nil || !strings.Contains(out, "NAT (netcheck") {
		t.Errorf("overlay status shows no netcheck (%v):\n%s", err, out)
	}
}
