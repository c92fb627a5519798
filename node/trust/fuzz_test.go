package trust

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/protocol"
)

// FuzzReadExchange feeds arbitrary bytes to the readers of one side of an
// exchange: never a crash, never more than the frame caps, and what they
// return is well formed.
func FuzzReadExchange(f *testing.F) {
	var ok bytes.Buffer
	_ = writeVersions(&ok, Versions{Revocations: 3, Policy: 1})
	_ = writeDocument(&ok, cert.KindRevocations, []byte("ov\x02\x01...."))
	_ = writeEnd(&ok)
	f.Add(ok.Bytes())
	var dup bytes.Buffer
	_ = writeVersions(&dup, Versions{})
	_ = writeDocument(&dup, cert.KindPolicy, []byte("x"))
	_ = writeDocument(&dup, cert.KindPolicy, []byte("y"))
	f.Add(dup.Bytes())
	f.Add([]byte{frameVersions, 0, 0, 0, 16})
	f.Add([]byte{frameDocument, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		if _, err := readVersions(r); err != nil {
			return
		}
		docs, err := readDocuments(r)
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("error of no known kind: %v", err)
		}
		if len(docs) > 2 {
			t.Fatalf("%d documents in one exchange", len(docs))
		}
		for _, d := range docs {
			if d.Kind != cert.KindRevocations && d.Kind != cert.KindPolicy {
				t.Fatalf("document of kind %#x", d.Kind)
			}
			if len(d.Raw) > maxDocFrame {
				t.Fatalf("document of %d bytes", len(d.Raw))
			}
		}
	})
}

func TestReadRefusesOversizedFrame(t *testing.T) {
	var b bytes.Buffer
	_ = protocol.WriteFrame(&b, frameVersions, make([]byte, 16))
	b.Write([]byte{frameDocument, 0x7f, 0xff, 0xff, 0xff}) // 2 GiB announced
	r := bytes.NewReader(b.Bytes())
	if _, err := readVersions(r); err != nil {
		t.Fatal(err)
	}
	if _, err := readDocuments(r); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversized frame: %v, want malformed", err)
	}
}
