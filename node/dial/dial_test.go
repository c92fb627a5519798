package dial_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/overlay-net/overlay/node/dial"
)

const id = "12D3KooWPGFf48r1QsVk7rEsy5fwdszaWQFz76fvokvktRwCJhcR"

func TestParseTarget(t *testing.T) {
	ai, err := dial.ParseTarget(" " + id + " ")
	if err != nil || ai.ID.String() != id || len(ai.Addrs) != 0 {
		t.Fatalf("bare peer ID: %v, %v", ai, err)
	}
	ai, err = dial.ParseTarget("/ip4/127.0.0.1/tcp/4100/p2p/" + id)
	if err != nil || ai.ID.String() != id || len(ai.Addrs) != 1 {
		t.Fatalf("full address: %v, %v", ai, err)
	}
	for _, bad := range []string{"", "not-an-id", "/ip4/127.0.0.1/tcp/4100", "/bogus"} {
		if _, err := dial.ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q) took it", bad)
		}
	}
}

func TestExplainPSK(t *testing.T) {
	base := errors.New("failed to negotiate security protocol: EOF")
	for _, private := range []bool{true, false} {
		err := dial.ExplainPSK(base, private)
		if !errors.Is(err, base) || !strings.Contains(err.Error(), "--psk") {
			t.Errorf("private=%v: %v", private, err)
		}
	}
	other := errors.New("connection refused")
	if err := dial.ExplainPSK(other, true); err != other {
		t.Errorf("an unrelated error was reworded: %v", err)
	}
}
