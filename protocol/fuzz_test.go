package protocol_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/protocol"
)

func FuzzDecodeHello(f *testing.F) {
	valid, err := protocol.EncodeHello(hello("net", protocol.Version, protocol.RolePrivate))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte(`{"network":"n","version":1,"role":"public","agent":""}`))
	f.Add([]byte(`{"network":"n","version":-7,"role":"private","direct":["/dns4/example.com/tcp/1/ws"],"relayed":["/p2p-circuit"]}`))
	f.Add([]byte(`{"network":"\u0000<>&","role":"public","direct":[]}`))
	f.Add([]byte("{not json"))
	f.Add([]byte{})
	f.Add([]byte("\xff\xfe\x00garbage"))
	f.Add([]byte(`{"network":"n","version":1,"role":"public","direct":["/ip4/1.2.3.4/tcp/99999"]}`))
	f.Add([]byte(`{"network":"n","version":3,"role":"public","cert":"b3YBAQAAAAJ7fQ=="}`))
	f.Add([]byte(`{"network":"n","version":3,"role":"public","cert":"not base64!"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := protocol.DecodeHello(b)
		if err != nil {
			if !errors.Is(err, protocol.ErrMalformed) {
				t.Fatalf("DecodeHello error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(h.Direct) > protocol.MaxAddrs || len(h.Relayed) > protocol.MaxAddrs {
			t.Fatalf("decoded %d+%d addresses, cap %d", len(h.Direct), len(h.Relayed), protocol.MaxAddrs)
		}
		if h.Role != protocol.RolePublic && h.Role != protocol.RolePrivate {
			t.Fatalf("decoded unknown role %q", h.Role)
		}
		enc, err := protocol.EncodeHello(h)
		if err != nil {
			// JSON escaping (<, >, & become \u003c...) can grow a hello
			// that was just under the cap over it; nothing else may fail.
			if strings.Contains(err.Error(), "cap") {
				return
			}
			t.Fatalf("re-encode of a decoded hello: %v", err)
		}
		h2, err := protocol.DecodeHello(enc)
		if err != nil {
			t.Fatalf("decode of re-encoded hello %q: %v", enc, err)
		}
		if h.Network != h2.Network || h.Version != h2.Version || h.Role != h2.Role || h.Agent != h2.Agent ||
			!bytes.Equal(h.Cert, h2.Cert) {
			t.Fatalf("round trip changed hello: %+v -> %+v", h, h2)
		}
		for _, p := range []struct{ a, b []ma.Multiaddr }{{h.Direct, h2.Direct}, {h.Relayed, h2.Relayed}} {
			if len(p.a) != len(p.b) {
				t.Fatalf("round trip changed address count: %v -> %v", p.a, p.b)
			}
			for i := range p.a {
				if !p.a[i].Equal(p.b[i]) {
					t.Fatalf("round trip changed address %v -> %v", p.a[i], p.b[i])
				}
			}
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	f.Add(frameBytes(typeHello, []byte(`{"network":"n"}`)), uint32(protocol.MaxHelloSize))
	f.Add(frameBytes(typeAccept, nil), uint32(0))
	f.Add(frameBytes(typeReject, []byte("no")), uint32(1))
	f.Add([]byte{0x01, 0xff, 0xff, 0xff, 0xff}, uint32(protocol.MaxHelloSize))
	f.Add([]byte{0x01, 0, 0}, uint32(10))
	f.Fuzz(func(t *testing.T, b []byte, max uint32) {
		max %= 1 << 16 // ReadFrame allocates up to max for a frame that claims it
		typ, payload, err := protocol.ReadFrame(bytes.NewReader(b), max)
		if err != nil {
			return
		}
		if uint32(len(payload)) > max {
			t.Fatalf("payload of %d bytes over cap %d", len(payload), max)
		}
		// What was read is exactly a frame that WriteFrame produces.
		var buf bytes.Buffer
		if err := protocol.WriteFrame(&buf, typ, payload); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, buf.Bytes()) {
			t.Fatalf("re-written frame %x is not a prefix of input %x", buf.Bytes(), b)
		}
	})
}

func FuzzDecodeRefusal(f *testing.F) {
	for _, r := range []*protocol.Refusal{
		{Code: protocol.CodeNetwork, Network: "overlay", MinVersion: 1, MaxVersion: 2, Reason: `network mismatch: peer is on "elsewhere", this node is on "overlay"`},
		{Code: protocol.CodeVersion, Network: "overlay", MinVersion: 1, MaxVersion: 2, Reason: "incompatible version"},
		{Code: protocol.CodeNoKey, Reason: "no key"},
		{Code: protocol.CodeMalformed, Network: "n", Reason: strings.Repeat(`"<`, protocol.MaxReasonSize)},
	} {
		b, err := protocol.EncodeRefusal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"code":"wrong-key","reason":"","network":"","min_version":0,"max_version":0}`))
	f.Add([]byte(`{"code":"later","reason":"a\u0000b\u2028","network":"\u001b","min_version":3,"max_version":9,"extra":{}}`))
	f.Add([]byte(`{"code":"other","reason":"\u009b31m\u0085forged"}`))
	f.Add([]byte(`{"code":"cert-expired","reason":"certificate expired","network":"n","min_version":1,"max_version":3}`))
	f.Add([]byte(`{"code":"cert-required","reason":"certificate required"}`))
	f.Add([]byte(`{"code":"version","min_version":2,"max_version":1}`))
	f.Add([]byte(`{"code":"network","max_version":1e3}`))
	f.Add([]byte("null"))
	f.Add([]byte("{not json"))
	f.Add([]byte{})
	f.Add([]byte("\xff\xfe\x00garbage"))
	self := hello("net", protocol.Version, protocol.RolePrivate)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := protocol.DecodeRefusal(b)
		if err != nil {
			if !errors.Is(err, protocol.ErrMalformed) {
				t.Fatalf("DecodeRefusal error %v does not wrap ErrMalformed", err)
			}
			return
		}
		switch r.Code {
		case protocol.CodeNetwork, protocol.CodeVersion, protocol.CodeNoKey, protocol.CodeWrongKey, protocol.CodeMalformed, protocol.CodeOther:
		default:
			if slices.Contains(protocol.CertCodes, r.Code) {
				break
			}
			t.Fatalf("decoded unknown code %q", r.Code)
		}
		if len(r.Reason) > protocol.MaxReasonSize || !utf8.ValidString(r.Reason) || strings.ContainsFunc(r.Reason, unicode.IsControl) {
			t.Fatalf("decoded reason %q", r.Reason)
		}
		if len(r.Network) > 64 || r.MinVersion < 0 || r.MaxVersion < r.MinVersion {
			t.Fatalf("decoded values %+v", r)
		}
		if want := sentinelOf(r.Code); want != nil && !errors.Is(r, want) {
			t.Fatalf("%s refusal does not match %v", r.Code, want)
		}
		if e := r.Explain("the relay", self); strings.ContainsFunc(e, unicode.IsControl) {
			t.Fatalf("Explain = %q", e)
		}
		enc, err := protocol.EncodeRefusal(r)
		if err != nil {
			t.Fatalf("re-encode of a decoded refusal: %v", err)
		}
		if len(enc) > protocol.MaxRefusalSize {
			t.Fatalf("re-encoded refusal of %d bytes", len(enc))
		}
		r2, err := protocol.DecodeRefusal(enc)
		if err != nil {
			t.Fatalf("decode of re-encoded refusal %q: %v", enc, err)
		}
		// Escaping may make the re-encoded reason longer than the input's
		// encoding; then it is cut, never changed otherwise.
		if r2.Code != r.Code || r2.Network != r.Network || r2.MinVersion != r.MinVersion ||
			r2.MaxVersion != r.MaxVersion || !strings.HasPrefix(r.Reason, r2.Reason) {
			t.Fatalf("round trip changed refusal: %+v -> %+v", r, r2)
		}
	})
}
