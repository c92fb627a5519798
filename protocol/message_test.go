package protocol_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/overlay-net/overlay/protocol"
)

// nopDeadline lets a bytes.Reader stand in for a stream.
type nopDeadline struct{ *bytes.Reader }

func (nopDeadline) SetReadDeadline(time.Time) error { return nil }

func TestMessageFramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := protocol.WriteOpen(&buf, 42); err != nil {
		t.Fatal(err)
	}
	if err := protocol.WriteData(&buf, 7, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := protocol.WriteAck(&buf, 7); err != nil {
		t.Fatal(err)
	}
	if err := protocol.WriteMsgError(&buf, "no\nway"); err != nil {
		t.Fatal(err)
	}
	r := nopDeadline{bytes.NewReader(buf.Bytes())}
	f, err := protocol.ReadMsgFrame(r, time.Second)
	if err != nil || !f.IsOpen() || f.Session != 42 {
		t.Fatalf("open: %+v %v", f, err)
	}
	f, err = protocol.ReadMsgFrame(r, time.Second)
	if err != nil || !f.IsData() || f.Seq != 7 || string(f.Data) != "hello" {
		t.Fatalf("data: %+v %v", f, err)
	}
	f, err = protocol.ReadMsgFrame(r, time.Second)
	if err != nil || !f.IsAck() || f.Seq != 7 {
		t.Fatalf("ack: %+v %v", f, err)
	}
	f, err = protocol.ReadMsgFrame(r, time.Second)
	if err != nil || !f.IsError() || f.Reason != "no way" {
		t.Fatalf("error frame: %+v %v", f, err)
	}
}

func TestMessageSizeCap(t *testing.T) {
	var buf bytes.Buffer
	if err := protocol.WriteData(&buf, 1, make([]byte, protocol.MaxMessageSize)); err != nil {
		t.Fatalf("a message of exactly the cap: %v", err)
	}
	if err := protocol.WriteData(&buf, 2, make([]byte, protocol.MaxMessageSize+1)); !errors.Is(err, protocol.ErrTooLarge) {
		t.Fatalf("over the cap: %v, want ErrTooLarge", err)
	}
	// A header announcing 1 GiB is refused before anything is allocated.
	hdr := []byte{0x11, 0x40, 0, 0, 0}
	if _, err := protocol.ReadMsgFrame(nopDeadline{bytes.NewReader(hdr)}, 0); !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("1 GiB frame: %v, want ErrFrameTooLarge", err)
	}
}

func FuzzReadMsgFrame(f *testing.F) {
	var buf bytes.Buffer
	protocol.WriteOpen(&buf, 1)
	protocol.WriteData(&buf, 2, []byte("x"))
	protocol.WriteAck(&buf, 2)
	f.Add(buf.Bytes())
	f.Add([]byte{0x11, 0, 0, 0, 3, 1, 2, 3})
	f.Add([]byte{0x13, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := nopDeadline{bytes.NewReader(b)}
		for {
			fr, err := protocol.ReadMsgFrame(r, 0)
			if err != nil {
				return
			}
			if len(fr.Data) > protocol.MaxMessageSize || len(fr.Reason) > protocol.MaxReasonSize {
				t.Fatalf("frame over its cap: %d data bytes, %d reason bytes", len(fr.Data), len(fr.Reason))
			}
			if fr.IsData() {
				var out bytes.Buffer
				if err := protocol.WriteData(&out, fr.Seq, fr.Data); err != nil {
					t.Fatalf("re-encode: %v", err)
				}
			}
		}
	})
}
