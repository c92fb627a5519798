package protocol_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/overlay-net/overlay/protocol"
)

func TestTunnelFramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := protocol.WriteTunnelRequest(&buf, "ssh"); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("raw bytes after the request")
	name, err := protocol.ReadTunnelRequest(nopDeadline{bytes.NewReader(buf.Bytes())}, 0)
	if err != nil || name != "ssh" {
		t.Fatalf("ReadTunnelRequest = %q, %v", name, err)
	}

	buf.Reset()
	_ = protocol.WriteTunnelAccept(&buf)
	_ = protocol.WriteTunnelRefuse(&buf, protocol.TunnelServiceDown, "dial 127.0.0.1:22: connection refused\n\x1b[31m")
	_ = protocol.WriteTunnelRefuse(&buf, protocol.TunnelNotAllowed, strings.Repeat("x", 4*protocol.MaxReasonSize))
	r := nopDeadline{bytes.NewReader(buf.Bytes())}
	a, err := protocol.ReadTunnelAnswer(r, 0)
	if err != nil || !a.OK {
		t.Fatalf("accept: %+v, %v", a, err)
	}
	a, err = protocol.ReadTunnelAnswer(r, 0)
	if err != nil || a.OK || a.Code != protocol.TunnelServiceDown || strings.ContainsAny(a.Reason, "\n\x1b") {
		t.Fatalf("refuse: %+v, %v", a, err)
	}
	a, err = protocol.ReadTunnelAnswer(r, 0)
	if err != nil || a.Code != protocol.TunnelNotAllowed || len(a.Reason) > protocol.MaxReasonSize {
		t.Fatalf("long refuse: code %v, %d bytes, %v", a.Code, len(a.Reason), err)
	}
	if _, err := protocol.ReadTunnelAnswer(r, 0); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}
}

func TestTunnelRequestRefusesBadNames(t *testing.T) {
	for _, name := range []string{"", "a b", "x/y", "ünï", strings.Repeat("n", 65), "line\nbreak"} {
		if err := protocol.WriteTunnelRequest(io.Discard, name); err == nil {
			t.Errorf("WriteTunnelRequest(%q) accepted", name)
		}
	}
	cases := map[string][]byte{
		"over the cap": frameBytes(0x20, bytes.Repeat([]byte("a"), protocol.MaxServiceNameSize+1)),
		"empty":        frameBytes(0x20, nil),
		"bad name":     frameBytes(0x20, []byte("a\x00b")),
		"wrong type":   frameBytes(0x21, nil),
		"huge header":  {0x20, 0xff, 0xff, 0xff, 0xff},
	}
	for what, b := range cases {
		if _, err := protocol.ReadTunnelRequest(nopDeadline{bytes.NewReader(b)}, 0); !errors.Is(err, protocol.ErrTunnelMalformed) {
			t.Errorf("%s: %v, want ErrTunnelMalformed", what, err)
		}
	}
}

func FuzzReadTunnelRequest(f *testing.F) {
	f.Add(frameBytes(0x20, []byte("ssh")))
	f.Add(frameBytes(0x20, []byte("web.ui_1-x")))
	f.Add(frameBytes(0x20, bytes.Repeat([]byte("a"), protocol.MaxServiceNameSize)))
	f.Add(frameBytes(0x21, nil))
	f.Add([]byte{0x20, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x20, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := protocol.ReadTunnelRequest(nopDeadline{bytes.NewReader(b)}, 0)
		if err != nil {
			return
		}
		if protocol.ValidServiceName(name) != nil {
			t.Fatalf("decoded an invalid name %q", name)
		}
		var buf bytes.Buffer
		if err := protocol.WriteTunnelRequest(&buf, name); err != nil {
			t.Fatalf("re-encode %q: %v", name, err)
		}
		if !bytes.HasPrefix(b, buf.Bytes()) {
			t.Fatalf("round trip changed the request: %q -> %q", b, buf.Bytes())
		}
	})
}

func FuzzReadTunnelAnswer(f *testing.F) {
	f.Add(frameBytes(0x21, nil))
	f.Add(frameBytes(0x22, append([]byte{3}, "dial: connection refused"...)))
	f.Add(frameBytes(0x22, append([]byte{200}, "\x1b[2J\n"...)))
	f.Add(frameBytes(0x22, nil))
	f.Add(frameBytes(0x21, []byte{1}))
	f.Add([]byte{0x22, 0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := protocol.ReadTunnelAnswer(nopDeadline{bytes.NewReader(b)}, 0)
		if err != nil {
			return
		}
		if a.OK {
			if a.Code != 0 || a.Reason != "" {
				t.Fatalf("accept with a refusal: %+v", a)
			}
			return
		}
		if a.Code > protocol.TunnelNotMember {
			t.Fatalf("decoded unknown code %d", a.Code)
		}
		if len(a.Reason) > protocol.MaxReasonSize || !utf8.ValidString(a.Reason) || strings.ContainsFunc(a.Reason, unicode.IsControl) {
			t.Fatalf("reason %q", a.Reason)
		}
		var buf bytes.Buffer
		if err := protocol.WriteTunnelRefuse(&buf, a.Code, a.Reason); err != nil {
			t.Fatal(err)
		}
		a2, err := protocol.ReadTunnelAnswer(nopDeadline{bytes.NewReader(buf.Bytes())}, 0)
		if err != nil || a2 != a {
			t.Fatalf("round trip changed the answer: %+v -> %+v, %v", a, a2, err)
		}
	})
}
