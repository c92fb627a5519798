package flagconf_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/overlay-net/overlay/internal/flagconf"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }
func (l *list) Repeatable() bool   { return true }

type settings struct {
	network, api string
	max          int
	retry        time.Duration
	wsOnly       bool
	relays       list
}

func flags(s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.StringVar(&s.network, "network", "overlay", "")
	fs.StringVar(&s.api, "api", "127.0.0.1:7400", "")
	fs.IntVar(&s.max, "max-reservations", 1024, "")
	fs.DurationVar(&s.retry, "retry-max", 30*time.Second, "")
	fs.BoolVar(&s.wsOnly, "ws-only", false, "")
	fs.Var(&s.relays, "relay", "")
	fs.String("config", "", "")
	return fs
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "overlay.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// Flags beat the environment, which beats the file, which beats defaults;
// each value's source is reported.
func TestPrecedence(t *testing.T) {
	file := writeFile(t, `# a comment
network: fromfile
max-reservations: 7
retry-max: 5s
api: off
relay:
  - /a
  - /b
`)
	var s settings
	fs := flags(&s)
	if err := fs.Parse([]string{"--network", "fromflag"}); err != nil {
		t.Fatal(err)
	}
	l := flagconf.Layers{Prefix: "OVERLAY", File: file, Skip: []string{"config"},
		Getenv: env(map[string]string{"OVERLAY_NETWORK": "fromenv", "OVERLAY_MAX_RESERVATIONS": "9", "OVERLAY_WS_ONLY": "true"})}
	src, err := l.Apply(fs)
	if err != nil {
		t.Fatal(err)
	}
	if s.network != "fromflag" || s.max != 9 || !s.wsOnly || s.retry != 5*time.Second || s.api != "off" ||
		strings.Join(s.relays, " ") != "/a /b" {
		t.Fatalf("settings = %+v", s)
	}
	want := map[string]string{
		"network":          "flag",
		"max-reservations": "env OVERLAY_MAX_RESERVATIONS",
		"ws-only":          "env OVERLAY_WS_ONLY",
		"retry-max":        "file " + file + ":4",
		"api":              "file " + file + ":5",
		"relay":            "file " + file + ":6",
		"config":           "default",
	}
	for k, w := range want {
		if got := src[k].String(); got != w {
			t.Errorf("source of %s = %q, want %q", k, got, w)
		}
	}
}

// A repeatable flag takes a comma-separated list from the environment.
func TestEnvList(t *testing.T) {
	var s settings
	fs := flags(&s)
	_ = fs.Parse(nil)
	if _, err := (flagconf.Layers{Prefix: "OVERLAY", Getenv: env(map[string]string{"OVERLAY_RELAY": "/x, /y"})}).Apply(fs); err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.relays, " ") != "/x /y" {
		t.Fatalf("relays = %v", s.relays)
	}
}

// Every mistake names where it is: the variable, or the file, line and key.
func TestErrorsNameTheKeyAndLine(t *testing.T) {
	cases := []struct{ name, file, env, want string }{
		{"unknown key", "network: x\nmax-reservation: 5\n", "", `:2: unknown key "max-reservation"`},
		{"bad value", "network: x\n\nmax-reservations: many\n", "", `:3: key "max-reservations": invalid value "many"`},
		{"bad duration", "retry-max: 5 parsecs\n", "", `:1: key "retry-max": invalid value`},
		{"list for one value", "network:\n  - a\n  - b\n", "", `:1: key "network" takes one value, not a list`},
		{"nested", "network:\n  name: x\n", "", `:1: key "network": want a value`},
		{"no value", "network:\n", "", `:1: key "network": no value`},
		{"duplicate", "network: a\nnetwork: b\n", "", `[2:1] mapping key "network" already defined at [1:1]`},
		{"config names config", "config: other.yaml\n", "", `:1: unknown key "config"`},
		{"bad env", "", "many", `OVERLAY_MAX_RESERVATIONS: invalid value "many"`},
		{"binary tag", "api: off\nnetwork: !!binary aGVsbG8=\n", "", `:2: key "network": YAML tags (!!binary) are not supported`},
		{"str tag", "network: !!str foo\n", "", `:1: key "network": YAML tags (!!str) are not supported`},
		{"anchor", "network: &a foo\n", "", `:1: key "network": YAML anchors (&a) are not supported`},
		{"alias", "api: x\nnetwork: *a\n", "", `:2: key "network": YAML aliases (*a) are not supported`},
		{"anchor then alias", "network: &a foo\napi: *a\n", "", `:1: key "network": YAML anchors (&a) are not supported`},
		{"tagged list", "relay: !!seq [/a]\n", "", `:1: key "relay": YAML tags (!!seq) are not supported`},
		{"anchor in a list", "relay:\n  - &r /a\n", "", `:1: key "relay": YAML anchors (&r) are not supported`},
		{"tagged key", "!!str network: foo\n", "", `:1: key "network": YAML tags (!!str) are not supported`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s settings
			fs := flags(&s)
			_ = fs.Parse(nil)
			l := flagconf.Layers{Prefix: "OVERLAY", Skip: []string{"config"},
				Getenv: env(map[string]string{"OVERLAY_MAX_RESERVATIONS": c.env})}
			if c.file != "" {
				l.File = writeFile(t, c.file)
			}
			_, err := l.Apply(fs)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", err, c.want)
			}
			if c.file != "" && !strings.Contains(err.Error(), l.File) {
				t.Fatalf("error = %v, want it to name the file", err)
			}
		})
	}
}

// An omitted flag keeps its default whatever the environment and the file
// say, and the rest still apply.
func TestOmit(t *testing.T) {
	var s settings
	fs := flags(&s)
	_ = fs.Parse(nil)
	l := flagconf.Layers{Prefix: "OVERLAY", File: writeFile(t, "network: fromfile\nmax-reservations: 7\n"),
		Getenv: env(map[string]string{"OVERLAY_API": "fromenv", "OVERLAY_RETRY_MAX": "3s"}),
		Omit:   []string{"network", "api"}}
	src, err := l.Apply(fs)
	if err != nil {
		t.Fatal(err)
	}
	if s.network != "overlay" || s.api != "127.0.0.1:7400" || s.max != 7 || s.retry != 3*time.Second {
		t.Fatalf("settings = %+v; want network and api at their defaults, the rest applied", s)
	}
	if src["network"].Kind != flagconf.FromDefault || src["api"].Kind != flagconf.FromDefault {
		t.Errorf("sources = %v", src)
	}
}
