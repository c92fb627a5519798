package protocol_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/overlay-net/overlay/protocol"
)

func TestEncodeDecodeRefusal(t *testing.T) {
	for _, r := range []*protocol.Refusal{
		{Code: protocol.CodeNetwork, Network: "overlay", MinVersion: 1, MaxVersion: 2, Reason: `network mismatch: peer is on "elsewhere", this node is on "overlay"`},
		{Code: protocol.CodeVersion, Network: "overlay", MinVersion: 1, MaxVersion: 2, Reason: "incompatible version: peer speaks version 3, this node accepts 1 to 2"},
		{Code: protocol.CodeNoKey, Network: "n", MinVersion: 2, MaxVersion: 2, Reason: "no key <&>"},
		{Code: protocol.CodeWrongKey, Reason: "wrong key"},
		{Code: protocol.CodeMalformed, Network: "n", Reason: "bad hello"},
		{Code: protocol.CodeOther, Network: "n", MinVersion: 1, MaxVersion: 7, Reason: "full: ünïcode"},
	} {
		b, err := protocol.EncodeRefusal(r)
		if err != nil {
			t.Fatalf("EncodeRefusal(%+v): %v", r, err)
		}
		got, err := protocol.DecodeRefusal(b)
		if err != nil {
			t.Fatalf("DecodeRefusal(%s): %v", b, err)
		}
		if got.Code != r.Code || got.Network != r.Network || got.MinVersion != r.MinVersion ||
			got.MaxVersion != r.MaxVersion || got.Reason != r.Reason || got.Error() != r.Reason {
			t.Errorf("round trip %+v -> %+v", r, got)
		}
		if want := sentinelOf(r.Code); want != nil && !errors.Is(got, want) {
			t.Errorf("decoded %s refusal does not match %v", got.Code, want)
		}
	}

	// A code this build does not know goes out and comes in as other.
	b, err := protocol.EncodeRefusal(&protocol.Refusal{Code: "quota", Reason: "full"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := protocol.DecodeRefusal(b); err != nil || got.Code != protocol.CodeOther {
		t.Errorf("unknown code: %+v, %v", got, err)
	}
	b = []byte(`{"code":"quota","reason":"full","network":"n","min_version":1,"max_version":2,"later":[1]}`)
	if got, err := protocol.DecodeRefusal(b); err != nil || got.Code != protocol.CodeOther || got.Reason != "full" {
		t.Errorf("unknown code and field: %+v, %v", got, err)
	}

	// Reasons are cleaned and cut: to MaxReasonSize, and shorter when JSON
	// escaping would outgrow MaxRefusalSize.
	for name, reason := range map[string]string{
		"control": "bad\nlevel=ERROR\x1b[31m",
		"long":    strings.Repeat("r", 2*protocol.MaxReasonSize),
		"quotes":  strings.Repeat(`"\`, protocol.MaxReasonSize),
		"u2028":   strings.Repeat("\u2028", protocol.MaxReasonSize),
	} {
		r := &protocol.Refusal{Code: protocol.CodeOther, Network: strings.Repeat(`"`, 64), Reason: reason}
		b, err := protocol.EncodeRefusal(r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(b) > protocol.MaxRefusalSize {
			t.Errorf("%s: %d bytes, cap %d", name, len(b), protocol.MaxRefusalSize)
		}
		got, err := protocol.DecodeRefusal(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got.Reason) > protocol.MaxReasonSize || strings.ContainsAny(got.Reason, "\n\x1b") {
			t.Errorf("%s: reason %q", name, got.Reason)
		}
	}

	for name, r := range map[string]*protocol.Refusal{
		"nil":          nil,
		"long network": {Code: protocol.CodeNetwork, Network: strings.Repeat("n", 65)},
		"negative":     {Code: protocol.CodeVersion, MinVersion: -1, MaxVersion: 2},
		"inverted":     {Code: protocol.CodeVersion, MinVersion: 3, MaxVersion: 2},
	} {
		if _, err := protocol.EncodeRefusal(r); err == nil {
			t.Errorf("EncodeRefusal(%s) succeeded", name)
		}
	}
}

func sentinelOf(c protocol.RejectCode) error {
	switch c {
	case protocol.CodeNetwork:
		return protocol.ErrNetworkMismatch
	case protocol.CodeVersion:
		return protocol.ErrVersionMismatch
	case protocol.CodeNoKey, protocol.CodeWrongKey:
		return protocol.ErrNetworkKey
	case protocol.CodeMalformed:
		return protocol.ErrMalformed
	}
	return nil
}

func refusalWire(k string, v any) []byte {
	m := map[string]any{"code": "network", "reason": "r", "network": "n", "min_version": 1, "max_version": 2}
	if v == nil {
		delete(m, k)
	} else {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func TestDecodeRefusalRejects(t *testing.T) {
	cases := map[string][]byte{
		"empty":        nil,
		"garbage":      []byte("\xff\xfe\x00garbage"),
		"not json":     []byte("{not json"),
		"null":         []byte("null"),
		"empty object": []byte("{}"),
		"json array":   []byte(`["network"]`),
		"truncated":    refusalWire("code", "network")[:20],
		"no code":      refusalWire("code", nil),
		"empty code":   refusalWire("code", ""),
		"long code":    refusalWire("code", strings.Repeat("c", 33)),
		"long reason":  refusalWire("reason", strings.Repeat("r", protocol.MaxReasonSize+1)),
		"long network": refusalWire("network", strings.Repeat("n", 65)),
		"negative":     refusalWire("min_version", -1),
		"inverted":     refusalWire("min_version", 3),
		"wrong type":   refusalWire("max_version", "two"),
		"float":        refusalWire("max_version", 2.5),
		"oversize": func() []byte {
			// Valid JSON, valid fields: only the size is wrong.
			b := refusalWire("pad", strings.Repeat("x", protocol.MaxRefusalSize))
			return b
		}(),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if r, err := protocol.DecodeRefusal(b); !errors.Is(err, protocol.ErrMalformed) {
				t.Fatalf("DecodeRefusal = %+v, %v, want ErrMalformed", r, err)
			}
		})
	}
}

func TestRefusalExplain(t *testing.T) {
	self := hello("elsewhere", 3, protocol.RolePrivate)
	for _, c := range []struct {
		r    *protocol.Refusal
		want string
	}{
		{&protocol.Refusal{Code: protocol.CodeNetwork, Network: "overlay"}, `the relay is on network "overlay", this node is on "elsewhere"`},
		{&protocol.Refusal{Code: protocol.CodeVersion, MinVersion: 1, MaxVersion: 2}, "the relay accepts handshake versions 1 to 2, this node speaks 3"},
		{&protocol.Refusal{Code: protocol.CodeVersion, MinVersion: 2, MaxVersion: 2}, "the relay accepts handshake version 2 only, this node speaks 3"},
		{&protocol.Refusal{Code: protocol.CodeNoKey}, "the relay's network requires a network key, this node has none"},
		{&protocol.Refusal{Code: protocol.CodeWrongKey}, "this node holds another network key than the relay"},
		{&protocol.Refusal{Code: protocol.CodeMalformed, Reason: "malformed handshake: unknown role"}, "the relay could not read this node's handshake: malformed handshake: unknown role"},
		{&protocol.Refusal{Code: protocol.CodeOther, Reason: "too many peers"}, "the relay said: too many peers"},
	} {
		if got := c.r.Explain("the relay", self); got != c.want {
			t.Errorf("Explain(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
}

func TestCheckProof(t *testing.T) {
	key := []byte("key")
	h := hello("n", protocol.Version, protocol.RolePrivate)
	h.Proof = protocol.NetworkProof(key, "a", "b")
	if err := protocol.CheckProof(key, h, "a", "b"); err != nil {
		t.Errorf("right proof: %v", err)
	}
	for _, c := range []struct {
		name  string
		proof []byte
		code  protocol.RejectCode
		text  string
	}{
		{"none", nil, protocol.CodeNoKey, "network key mismatch: peer proved no network key, this network has one"},
		{"other key", protocol.NetworkProof([]byte("other"), "a", "b"), protocol.CodeWrongKey, "network key mismatch: peer holds another network key"},
	} {
		h.Proof = c.proof
		err := protocol.CheckProof(key, h, "a", "b")
		var r *protocol.Refusal
		if !errors.As(err, &r) || r.Code != c.code || err.Error() != c.text || !errors.Is(err, protocol.ErrNetworkKey) {
			t.Errorf("%s: CheckProof = %v (%+v), want %s %q", c.name, err, r, c.code, c.text)
		}
	}
}

// A checker's plain error is sent as CodeOther with its text, and still
// matches what it wraps on the refusing side.
func TestPlainCheckerError(t *testing.T) {
	plain := errors.New("too many peers")
	ir, rr := runWith(t, transports["pipe"], hello("n", protocol.Version, protocol.RolePrivate),
		hello("n", protocol.Version, protocol.RolePublic), func(protocol.Hello) error { return plain })
	ours := rejected(t, "Respond", rr.err, false)
	theirs := rejected(t, "Initiate", ir.err, true)
	if !errors.Is(rr.err, plain) || ours.Refusal.Code != protocol.CodeOther {
		t.Errorf("Respond: %v, refusal %+v", rr.err, ours.Refusal)
	}
	if got, want := theirs.Refusal.Explain("the relay", protocol.Hello{}), "the relay said: too many peers"; got != want {
		t.Errorf("Explain = %q, want %q", got, want)
	}
	if r := theirs.Refusal; r.Network != "n" || r.MinVersion != protocol.MinVersion || r.MaxVersion != protocol.Version {
		t.Errorf("refusal %+v lacks the relay's values", r)
	}
}
