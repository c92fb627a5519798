package main_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/overlay-net/overlay/internal/wstransport/tlstest"
)

// The binary wires the TLS settings: a relay given tls-cert and tls-key in
// its config file listens on /tls/ws; a peer given --tls-ca reserves on it;
// a /tls/ws listen address without a certificate fails at start, naming
// the flag.
func TestBinaryWSSRelay(t *testing.T) {
	dir := t.TempDir()
	out, err := overlay(t, "relay", "--data", filepath.Join(dir, "bad"), "--api", "off", "--no-dht",
		"--listen", "/ip4/127.0.0.1/tcp/0/tls/ws")
	if err == nil || !strings.Contains(out+err.Error(), "--tls-cert") {
		t.Fatalf("relay on /tls/ws without a certificate: %v\n%s", err, out)
	}

	ca := tlstest.NewCA(t, dir)
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, cf, kf)
	conf := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(conf, []byte("listen: [/ip4/127.0.0.1/tcp/0/tls/ws]\ntls-cert: "+cf+"\ntls-key: "+kf+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, filepath.Join(dir, "relay"), "relay", "--config", conf, "--addr-file", filepath.Join(dir, "relay.addrs"))
	addr := strings.Fields(waitFile(t, filepath.Join(dir, "relay.addrs")))[0]
	if !strings.Contains(addr, "/tls/ws/p2p/") {
		t.Fatalf("relay address %s, want /tls/ws", addr)
	}
	p := start(t, filepath.Join(dir, "p"), "peer", "--relay", addr, "--ws-only", "--tls-ca", ca.File)
	api := p.api(t)
	eventually(t, 20*time.Second, "peer reserved on the /tls/ws relay", func() error {
		out, err := overlay(t, "status", "--json", "--api", api)
		if err != nil {
			return err
		}
		var st struct {
			Reservations []struct {
				Relay string `json:"relay"`
			} `json:"reservations"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return err
		}
		if len(st.Reservations) != 1 {
			return errors.New("no reservation yet: " + out)
		}
		return nil
	})
}
