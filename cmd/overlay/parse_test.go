package main

import (
	"flag"
	"slices"
	"strings"
	"testing"
)

// sample returns a value flag f accepts.
func sample(f *flag.Flag) string {
	const id = "12D3KooWGZ8GccZ9RTv9kUK6Vomd1qshVswsH2AoHqgfNx97zUPh"
	switch f.Name {
	case "relay", "bootstrap", "listen":
		return "/ip4/127.0.0.1/tcp/4001/p2p/" + id
	case "expose":
		return "web=127.0.0.1:8080"
	case "forward":
		return "127.0.0.1:9000=" + id + "/web"
	}
	if f.DefValue != "" {
		return f.DefValue
	}
	return "x"
}

// Every flag of every command may come before, between or after the
// positional arguments, in its -flag, --flag and --flag=value forms.
func TestFlagsAnywhere(t *testing.T) {
	for _, c := range allCommands() {
		fs := flagsOf(c)
		if fs == nil {
			t.Fatalf("%s: no flag set captured", c.name)
		}
		fs.VisitAll(func(f *flag.Flag) {
			v := sample(f)
			forms := [][]string{{"--" + f.Name, v}, {"-" + f.Name, v}, {"--" + f.Name + "=" + v}}
			if isBool(f) {
				forms = [][]string{{"--" + f.Name}, {"-" + f.Name}, {"--" + f.Name + "=true"}}
			}
			for _, form := range forms {
				for _, args := range [][]string{
					append([]string{"A", "B"}, form...),
					append(append([]string{"A"}, form...), "B"),
					append(slices.Clone(form), "A", "B"),
				} {
					g := flagsOf(c)
					if err := parseInterspersed(g, args); err != nil {
						t.Errorf("overlay %s %s: %v", c.name, strings.Join(args, " "), err)
						continue
					}
					set := false
					g.Visit(func(x *flag.Flag) { set = set || x.Name == f.Name })
					if !set || !slices.Equal(g.Args(), []string{"A", "B"}) {
						t.Errorf("overlay %s %s: %s set %v, arguments %q; want it set and A B", c.name, strings.Join(args, " "), f.Name, set, g.Args())
					}
				}
			}
		})
	}
}

// After "--" everything is an argument; a flag's value is taken whatever
// it looks like.
func TestDoubleDashEndsFlags(t *testing.T) {
	fs := flagsOf(command{run: runPing})
	if err := parseInterspersed(fs, []string{"--api", "--", "P", "--count", "2", "--", "--json", "-"}); err != nil {
		t.Fatal(err)
	}
	if got := fs.Lookup("api").Value.String(); got != "--" {
		t.Errorf("--api = %q, want \"--\" (a value, not the end of flags)", got)
	}
	if got := fs.Lookup("count").Value.String(); got != "2" {
		t.Errorf("--count = %q, want 2", got)
	}
	if !slices.Equal(fs.Args(), []string{"P", "--json", "-"}) {
		t.Errorf("arguments = %q, want P --json -", fs.Args())
	}
}

func TestSuggest(t *testing.T) {
	for in, want := range map[string]string{"peeers": "peers", "stauts": "status", "exp": "expose",
		"forwrd": "forward", "relya": "relay", "xyz": "", "completoin": "completion"} {
		if got := suggest(in); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// An OVERLAY_ variable that no command reads is an error naming it, with
// the nearest real one; the variables the project sets are not.
func TestCheckEnv(t *testing.T) {
	ok := []string{"HOME=/root", "OVERLAY_MAX_RESERVATIONS=5", "OVERLAY_API_TOKEN=/x", "OVERLAY_CONFIG=/c.yaml",
		"OVERLAY_TEST_LOG=1", "OVERLAY_SCREENSHOT=/s.png", "OVERLAY_RELAY=/a,/b", "OVERLAY_COUNT=3", "OVERLAY_WS_ONLY=true", "OVERLAY_EMPTY="}
	if err := checkEnv(ok); err != nil {
		t.Errorf("checkEnv of known variables: %v", err)
	}
	err := checkEnv(append(ok, "OVERLAY_MAX_RESERVATION=5", "OVERLAY_BOGUS=1"))
	if err == nil || !strings.Contains(err.Error(), "OVERLAY_MAX_RESERVATION is no setting of any overlay command (did you mean OVERLAY_MAX_RESERVATIONS?)") ||
		!strings.Contains(err.Error(), "OVERLAY_BOGUS is no setting") {
		t.Errorf("checkEnv = %v; want both unknown variables named, the typo with its nearest", err)
	}
}
