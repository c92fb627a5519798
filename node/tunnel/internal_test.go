package tunnel

import (
	"encoding/json"
	"testing"
	"time"
)

func TestLogQuota(t *testing.T) {
	var q logQuota
	now := time.Unix(1000, 0)
	for i := range logBurst {
		if ok, d := q.allow(now); !ok || d != 0 {
			t.Fatalf("line %d: allowed %v, dropped %d", i, ok, d)
		}
	}
	for range 5 {
		if ok, _ := q.allow(now.Add(time.Second)); ok {
			t.Fatal("line beyond the burst allowed")
		}
	}
	if ok, d := q.allow(now.Add(logEvery)); !ok || d != 5 {
		t.Fatalf("after the interval: allowed %v, suppressed %d, want true, 5", ok, d)
	}
}

func TestSameListen(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"[::]:80", "0.0.0.0:80", true},
		{"0.0.0.0:80", "[::]:80", true},
		{"127.0.0.1:80", "127.0.0.1:80", true},
		{"[::ffff:127.0.0.1]:80", "127.0.0.1:80", true},
		{"[::]:80", "0.0.0.0:81", false},
		{"[::]:80", "127.0.0.1:80", false},
		{"localhost:80", "127.0.0.1:80", false},
	} {
		if got := sameListen(c.a, c.b); got != c.same {
			t.Errorf("sameListen(%s, %s) = %v", c.a, c.b, got)
		}
	}
}

// FuzzParseStore: any bytes give services that pass check, each name
// once, or an error; never a panic.
func FuzzParseStore(f *testing.F) {
	f.Add([]byte(`{"version":1,"expose":[{"name":"ssh","target":"127.0.0.1:22"}]}`))
	f.Add([]byte(`{"version":1,"expose":[{"name":"a","target":"h:1","allow":["12D3KooWGJqNEQyCMx6eqWZLMGdnbdBzXLtM76mXYo1Kk54HpyjX"]}]}`))
	f.Add([]byte(`{"version":1,"expose":[{"name":"a","target":"h:1","Allowed":[]}]}`))
	f.Add([]byte(`{"version":99,"expose":[]}`))
	f.Add([]byte(`{"version":1,"expose":[]} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := parseStore(b)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range es {
			if err := e.check(); err != nil {
				t.Fatalf("accepted %+v: %v", e, err)
			}
			if seen[e.Name] {
				t.Fatalf("accepted %q twice", e.Name)
			}
			seen[e.Name] = true
		}
		if _, err := json.Marshal(es); err != nil {
			t.Fatal(err)
		}
	})
}
