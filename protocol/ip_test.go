package protocol_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/overlay-net/overlay/protocol"
)

func TestIPFrames(t *testing.T) {
	var b []byte
	pkts := [][]byte{{0x45, 1, 2}, bytes.Repeat([]byte{0x60}, 1420), {0x45}}
	for _, p := range pkts {
		b = protocol.AppendIPFrame(b, p)
	}
	r := bytes.NewReader(b)
	buf := make([]byte, protocol.MaxIPPacket)
	for i, want := range pkts {
		got, err := protocol.ReadIPFrame(r, buf)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("frame %d: % x, %v", i, got, err)
		}
	}
	if _, err := protocol.ReadIPFrame(r, buf); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestIPFrameMalformed(t *testing.T) {
	buf := make([]byte, 1500)
	for name, in := range map[string][]byte{
		"zero length":     {0, 0},
		"above the cap":   {0x05, 0xdd, 1, 2},
		"above the cap 2": {0xff, 0xff},
	} {
		if _, err := protocol.ReadIPFrame(bytes.NewReader(in), buf); !errors.Is(err, protocol.ErrIPMalformed) {
			t.Errorf("%s: %v, want ErrIPMalformed", name, err)
		}
	}
	_, err := protocol.ReadIPFrame(bytes.NewReader([]byte{0, 4, 1, 2}), buf)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated packet: %v, want io.ErrUnexpectedEOF", err)
	}
}

func FuzzReadIPFrame(f *testing.F) {
	f.Add(protocol.AppendIPFrame(nil, []byte{0x45, 0, 0, 20}))
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 1})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		buf := make([]byte, 2048)
		r := bytes.NewReader(b)
		for {
			p, err := protocol.ReadIPFrame(r, buf)
			if err != nil {
				return
			}
			if len(p) == 0 || len(p) > len(buf) {
				t.Fatalf("packet of %d bytes, cap %d", len(p), len(buf))
			}
		}
	})
}
