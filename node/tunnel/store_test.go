package tunnel_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"

	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/node/tunnel"
)

// noNet is a Transport for tests of what needs no peer: the store file,
// names, listeners.
type noNet struct{}

func (noNet) NewStream(context.Context, peer.ID, ...libp2pproto.ID) (network.Stream, error) {
	return nil, errors.New("no network")
}
func (noNet) SetStreamHandler(libp2pproto.ID, network.StreamHandler) {}
func (noNet) RemoveStreamHandler(libp2pproto.ID)                     {}

func randID(t *testing.T) peer.ID {
	id, err := peer.IDFromPrivateKey(nt.Key(t))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newService(t *testing.T, cfg tunnel.Config) *tunnel.Service {
	t.Helper()
	s, err := tunnel.New(noNet{}, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// A store file that is not exactly what this build writes is refused as a
// whole, moved aside with an ERROR line naming it, and the node exposes
// only its configuration's services: a typo must not open a service to
// every member.
func TestStoreFileStrict(t *testing.T) {
	for name, body := range map[string]string{
		"unknown field":     `{"version":1,"expose":[{"name":"ssh","target":"127.0.0.1:22","Allowed":["x"]}]}`,
		"unknown top field": `{"version":1,"expose":[],"extra":1}`,
		"unknown version":   `{"version":99,"expose":[{"name":"ssh","target":"127.0.0.1:22"}]}`,
		"missing version":   `{"expose":[{"name":"ssh","target":"127.0.0.1:22"}]}`,
		"duplicate":         `{"version":1,"expose":[{"name":"ssh","target":"127.0.0.1:22"},{"name":"ssh","target":"127.0.0.1:23"}]}`,
		"dot dot":           `{"version":1,"expose":[{"name":"..","target":"127.0.0.1:22"}]}`,
		"port 0":            `{"version":1,"expose":[{"name":"ssh","target":"127.0.0.1:0"}]}`,
		"trailing data":     `{"version":1,"expose":[]} {"version":1}`,
		"not json":          `{"version":1,`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tunnels.json")
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			rec := &nt.LogRecorder{}
			s := newService(t, tunnel.Config{StorePath: path, Logger: rec.Logger(),
				Expose: []tunnel.Exposure{{Name: "cfg", Target: "127.0.0.1:1"}}})
			if es := s.Exposures(); len(es) != 1 || es[0].Name != "cfg" {
				t.Errorf("exposed %+v, want only the configuration's", es)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("damaged file left in place: %v", err)
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Errorf("moved aside: %v", aside)
			}
			logged := strings.Join(rec.Records(), "\n")
			if !strings.Contains(logged, "ERROR") || !strings.Contains(logged, path) {
				t.Errorf("log %q: want an ERROR line naming %s", logged, path)
			}
		})
	}
}

// A file this build wrote loads back.
func TestStoreFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tunnels.json")
	s := newService(t, tunnel.Config{StorePath: path})
	if _, err := s.Expose(tunnel.Exposure{Name: "ssh", Target: "127.0.0.1:22", Allow: []peer.ID{randID(t)}}, false); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = newService(t, tunnel.Config{StorePath: path})
	if es := s.Exposures(); len(es) != 1 || es[0].Name != "ssh" || len(es[0].Allow) != 1 {
		t.Fatalf("after reload: %+v", es)
	}
}

// Exposing a name already exposed is refused unless replacing, and says
// whether it replaced.
func TestExposeExistingName(t *testing.T) {
	s := newService(t, tunnel.Config{Expose: []tunnel.Exposure{{Name: "cfg", Target: "127.0.0.1:1"}}})
	e := tunnel.Exposure{Name: "web", Target: "127.0.0.1:80"}
	if replaced, err := s.Expose(e, false); err != nil || replaced {
		t.Fatalf("first expose: %v, %v", replaced, err)
	}
	e.Target = "127.0.0.1:81"
	if _, err := s.Expose(e, false); !errors.Is(err, tunnel.ErrExists) {
		t.Fatalf("second expose: %v, want %v", err, tunnel.ErrExists)
	}
	if es := s.Exposures(); es[1].Target != "127.0.0.1:80" {
		t.Fatalf("refused expose changed the service: %+v", es[1])
	}
	if replaced, err := s.Expose(e, true); err != nil || !replaced {
		t.Fatalf("replace: %v, %v", replaced, err)
	}
	if _, err := s.Expose(tunnel.Exposure{Name: "cfg", Target: "127.0.0.1:2"}, false); !errors.Is(err, tunnel.ErrExists) {
		t.Fatalf("expose over the configuration's service: %v", err)
	}
}

// Names a URL path rewrites and ports no connection can use are refused
// when exposed, not at connect time.
func TestExposeRefusesBadNamesAndPorts(t *testing.T) {
	s := newService(t, tunnel.Config{})
	for _, e := range []tunnel.Exposure{
		{Name: ".", Target: "127.0.0.1:22"}, {Name: "..", Target: "127.0.0.1:22"}, {Name: "...", Target: "127.0.0.1:22"},
		{Name: "x", Target: "127.0.0.1:-1"}, {Name: "x", Target: "127.0.0.1:0"}, {Name: "x", Target: "127.0.0.1:99999"},
		{Name: "x", Target: "127.0.0.1:nosuchservice"},
	} {
		if _, err := s.Expose(e, false); err == nil {
			t.Errorf("exposed %s=%s", e.Name, e.Target)
		}
	}
	for _, e := range []tunnel.Exposure{{Name: ".hidden", Target: "127.0.0.1:1"}, {Name: "a..b", Target: "[::1]:65535"}} {
		if _, err := s.Expose(e, false); err != nil {
			t.Errorf("refused %s=%s: %v", e.Name, e.Target, err)
		}
	}
	_, err := s.Expose(tunnel.Exposure{Name: "café", Target: "127.0.0.1:1"}, false)
	if err == nil || !strings.Contains(err.Error(), `'é'`) {
		t.Errorf("expose café: %v, want the refused character echoed as 'é'", err)
	}
}

// A forward bound on every interface (Go binds 0.0.0.0 as [::]) is
// removed by the address it was asked for.
func TestUnforwardUnspecified(t *testing.T) {
	s := newService(t, tunnel.Config{})
	f, err := s.Forward("0.0.0.0:0", randID(t), "svc")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(f.Listen)
	if err := s.Unforward("0.0.0.0:" + port); err != nil {
		t.Fatalf("unforward 0.0.0.0:%s (bound as %s): %v", port, f.Listen, err)
	}
	if len(s.Forwards()) != 0 {
		t.Fatal("forward still listed")
	}
}

// With exposure targets restricted, a service outside them is refused at
// expose (a literal IP) and at connect (a name resolving outside them).
func TestExposeTargets(t *testing.T) {
	for _, bad := range []string{"everywhere", "any,loopback", "10.0.0.0/33", "loopback,x"} {
		if _, err := tunnel.ParseTargets(bad); err == nil {
			t.Errorf("ParseTargets(%q) accepted", bad)
		}
	}
	tg, err := tunnel.ParseTargets("loopback, 192.168.1.0/24,10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if tg.String() != "loopback,192.168.1.0/24,10.1.2.3/32" {
		t.Errorf("String() = %s", tg)
	}
	for target, ok := range map[string]bool{"127.0.0.1:22": true, "[::1]:22": true, "192.168.1.9:80": true,
		"10.1.2.3:80": true, "10.1.2.4:80": false, "8.8.8.8:53": false, "db.lan:5432": true} {
		if err := tg.Check(target); (err == nil) != ok {
			t.Errorf("Check(%s) = %v", target, err)
		}
	}
	s := newService(t, tunnel.Config{Targets: tg})
	if _, err := s.Expose(tunnel.Exposure{Name: "dns", Target: "8.8.8.8:53"}, false); err == nil {
		t.Error("exposed 8.8.8.8:53 with loopback-only targets")
	}
	if _, err := tunnel.New(noNet{}, nil, tunnel.Config{Targets: tg,
		Expose: []tunnel.Exposure{{Name: "dns", Target: "8.8.8.8:53"}}}); err == nil {
		t.Error("started with a configured exposure outside the targets")
	}
	var zero tunnel.Targets
	if !zero.Any() || zero.Check("8.8.8.8:53") != nil {
		t.Error("the zero Targets does not admit any host")
	}
}
