package relay_test

import (
	"strings"
	"testing"

	"github.com/overlay-net/overlay/relay"
)

func TestParseAllowlist(t *testing.T) {
	const id = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	ids, err := relay.ParseAllowlist(strings.NewReader("# operators' own nodes\n\n" + id + "  # laptop\n"))
	if err != nil || len(ids) != 1 || ids[0].String() != id {
		t.Fatalf("ParseAllowlist = %v, %v; want [%s]", ids, err, id)
	}
	_, err = relay.ParseAllowlist(strings.NewReader(id + "\nnot-a-peer\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad line: err = %v, want one naming line 2", err)
	}
	_, err = relay.ParseAllowlist(strings.NewReader(strings.Repeat("#", 2<<20)))
	if err == nil {
		t.Fatal("a 2 MiB file was accepted")
	}
}

func FuzzParseAllowlist(f *testing.F) {
	f.Add("12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN # x\n")
	f.Add("#\n\n  \n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = relay.ParseAllowlist(strings.NewReader(s))
	})
}
