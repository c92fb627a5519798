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

func TestResumeFramesRoundTrip(t *testing.T) {
	var b []byte
	b = protocol.AppendResumeData(b, 1<<40, []byte("hello"))
	b = protocol.AppendResumeAck(b, 77)
	b = protocol.AppendResumeFin(b, 1<<40+5)
	buf := bytes.NewBuffer(b)
	if err := protocol.WriteResumeAbort(buf, "service went\naway"); err != nil {
		t.Fatal(err)
	}
	want := []protocol.ResumeFrame{
		{Kind: protocol.ResumeData, Off: 1 << 40, Data: []byte("hello")},
		{Kind: protocol.ResumeAck, Off: 77},
		{Kind: protocol.ResumeFin, Off: 1<<40 + 5},
		{Kind: protocol.ResumeAbort, Reason: "service went away"},
	}
	for i, w := range want {
		f, err := protocol.ReadResumeFrame(buf)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Kind != w.Kind || f.Off != w.Off || !bytes.Equal(f.Data, w.Data) || f.Reason != w.Reason {
			t.Fatalf("frame %d = %+v, want %+v", i, f, w)
		}
	}
	if _, err := protocol.ReadResumeFrame(buf); err != io.EOF {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}
}

func TestResumeHandshakeRoundTrip(t *testing.T) {
	id := protocol.SessionID{1, 2, 3, 15: 16}
	var buf bytes.Buffer
	if err := protocol.WriteResume(&buf, id, 12345); err != nil {
		t.Fatal(err)
	}
	gotID, off, err := protocol.ReadResume(nopDeadline{bytes.NewReader(buf.Bytes())}, 0)
	if err != nil || gotID != id || off != 12345 {
		t.Fatalf("resume = %x %d %v", gotID, off, err)
	}
	buf.Reset()
	if err := protocol.WriteResumed(&buf, 99); err != nil {
		t.Fatal(err)
	}
	if err := protocol.WriteResumeGone(&buf, "no such session"); err != nil {
		t.Fatal(err)
	}
	r := nopDeadline{bytes.NewReader(buf.Bytes())}
	if a, err := protocol.ReadResumeAnswer(r, 0); err != nil || !a.OK || a.Off != 99 {
		t.Fatalf("resumed = %+v %v", a, err)
	}
	if a, err := protocol.ReadResumeAnswer(r, 0); err != nil || a.OK || a.Reason != "no such session" {
		t.Fatalf("gone = %+v %v", a, err)
	}
}

func TestResumeFramesRefused(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty data":       frameBytes(0x30, make([]byte, 8)),
		"short ack":        frameBytes(0x31, []byte{1}),
		"data overflow":    frameBytes(0x30, append(bytes.Repeat([]byte{0xff}, 8), 1, 2)),
		"unknown type":     frameBytes(0x3f, nil),
		"oversized frame":  {0x30, 0x00, 0x10, 0x00, 0x09},
		"oversized reason": frameBytes(0x33, bytes.Repeat([]byte("x"), protocol.MaxReasonSize+1)),
	} {
		if _, err := protocol.ReadResumeFrame(bytes.NewReader(b)); !errors.Is(err, protocol.ErrResumeMalformed) {
			t.Errorf("%s: %v, want ErrResumeMalformed", name, err)
		}
	}
}

func FuzzReadResumeFrame(f *testing.F) {
	f.Add(protocol.AppendResumeData(nil, 0, []byte("x")))
	f.Add(protocol.AppendResumeData(nil, 1<<63, bytes.Repeat([]byte{0}, protocol.MaxResumeData)))
	f.Add(protocol.AppendResumeAck(nil, 5))
	f.Add(protocol.AppendResumeFin(nil, 5))
	f.Add(frameBytes(0x33, []byte("\x1b[2J\nreason")))
	f.Add(frameBytes(0x30, bytes.Repeat([]byte{0xff}, 10)))
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := protocol.ReadResumeFrame(bytes.NewReader(b))
		if err != nil {
			return
		}
		switch fr.Kind {
		case protocol.ResumeData:
			if len(fr.Data) == 0 || len(fr.Data) > protocol.MaxResumeData || fr.Off+uint64(len(fr.Data)) < fr.Off {
				t.Fatalf("data frame of %d bytes at %d", len(fr.Data), fr.Off)
			}
			if !bytes.HasPrefix(b, protocol.AppendResumeData(nil, fr.Off, fr.Data)) {
				t.Fatal("round trip changed the data frame")
			}
		case protocol.ResumeAbort:
			if len(fr.Reason) > protocol.MaxReasonSize || !utf8.ValidString(fr.Reason) || strings.ContainsFunc(fr.Reason, unicode.IsControl) {
				t.Fatalf("decoded reason %q", fr.Reason)
			}
		case protocol.ResumeAck, protocol.ResumeFin:
		default:
			t.Fatalf("decoded kind %d", fr.Kind)
		}
	})
}

func FuzzReadResume(f *testing.F) {
	var buf bytes.Buffer
	_ = protocol.WriteResume(&buf, protocol.SessionID{1}, 7)
	f.Add(buf.Bytes())
	f.Add(frameBytes(0x38, []byte{1, 2}))
	f.Add(frameBytes(0x23, append(make([]byte, 16), "ssh"...)))
	f.Add([]byte{0x38, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		// The same bytes as a resume, a resume answer, a 2.0.0 tunnel
		// request and a perf request: each decodes or refuses cleanly.
		if id, off, err := protocol.ReadResume(nopDeadline{bytes.NewReader(b)}, 0); err == nil {
			var out bytes.Buffer
			_ = protocol.WriteResume(&out, id, off)
			if !bytes.HasPrefix(b, out.Bytes()) {
				t.Fatal("round trip changed the resume")
			}
		}
		if a, err := protocol.ReadResumeAnswer(nopDeadline{bytes.NewReader(b)}, 0); err == nil && !a.OK {
			if len(a.Reason) > protocol.MaxReasonSize || !utf8.ValidString(a.Reason) {
				t.Fatalf("decoded reason %q", a.Reason)
			}
		}
		if _, name, err := protocol.ReadTunnelRequest2(nopDeadline{bytes.NewReader(b)}, 0); err == nil {
			if protocol.ValidServiceName(name) != nil {
				t.Fatalf("decoded an invalid name %q", name)
			}
		}
		_, _ = protocol.ReadPerfRequest(nopDeadline{bytes.NewReader(b)}, 0)
		_ = protocol.ReadPerfAccept(nopDeadline{bytes.NewReader(b)}, 0)
	})
}
