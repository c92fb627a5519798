package trust

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/protocol"
)

// ID is the libp2p protocol ID by which members pass on the newest
// revocation list and policy.
//
// Version history:
//
//	1.0.0  versions, document and end frames.
const ID = "/overlay/trust/1.0.0"

// Protocol flow. One stream per exchange; either member may open it, on a
// new member connection or when it holds a newer document:
//
//	initiator                           responder
//	  versions(rev, pol) ------------->  checks the initiator is a member
//	                   <--------------  versions(rev, pol)
//	                   <--------------  document(kind, doc), for each kind
//	                                    the initiator holds an older one of
//	                   <--------------  end
//	  document(kind, doc) ------------>  for each kind the responder holds
//	                                    an older one of
//	  end ---------------------------->
//
// Frames are protocol.WriteFrame's (type uint8, length uint32, payload):
//
//	0x01 versions  revocation list version uint64, policy version uint64
//	               (0: none held); payload exactly 16 bytes
//	0x02 document  kind uint8 (cert.KindRevocations or cert.KindPolicy),
//	               then the raw signed document; at most maxDocFrame bytes
//	0x03 end       empty: no more documents from this side
//
// A side sends at most one document of each kind per exchange; a reader
// refuses more, a frame over its cap, or an unknown type, by resetting the
// stream. The whole exchange runs under ExchangeTimeout. A document
// received is offered to the Store, which checks it (a newer version,
// signed by the CA) before it is held and passed on; a receiver never
// trusts the versions frame for more than deciding what to send.
const (
	frameVersions = 0x01
	frameDocument = 0x02
	frameEnd      = 0x03
)

const versionsLen = 16

// maxDocFrame caps a document frame: the kind byte, the envelope and the
// largest body of a spread kind (a revocation list).
const maxDocFrame = 1 + 8 + cert.MaxRevocationsBody + 64

// ExchangeTimeout bounds one exchange, both directions.
const ExchangeTimeout = 10 * time.Second

// ErrMalformed is wrapped by every error about a peer's bad frame.
var ErrMalformed = errors.New("malformed trust frame")

// Versions is what a side holds.
type Versions struct{ Revocations, Policy uint64 }

func (v Versions) of(kind byte) uint64 {
	if kind == cert.KindPolicy {
		return v.Policy
	}
	return v.Revocations
}

func writeVersions(w io.Writer, v Versions) error {
	var b [versionsLen]byte
	binary.BigEndian.PutUint64(b[:8], v.Revocations)
	binary.BigEndian.PutUint64(b[8:], v.Policy)
	return protocol.WriteFrame(w, frameVersions, b[:])
}

func readVersions(r io.Reader) (Versions, error) {
	typ, p, err := protocol.ReadFrame(r, versionsLen)
	if err != nil {
		return Versions{}, fmt.Errorf("read versions: %w", wrapFrameErr(err))
	}
	if typ != frameVersions || len(p) != versionsLen {
		return Versions{}, fmt.Errorf("%w: want versions (%d bytes), got type %#x of %d bytes", ErrMalformed, versionsLen, typ, len(p))
	}
	return Versions{binary.BigEndian.Uint64(p[:8]), binary.BigEndian.Uint64(p[8:])}, nil
}

func writeDocument(w io.Writer, kind byte, doc []byte) error {
	return protocol.WriteFrame(w, frameDocument, []byte{kind}, doc)
}

func writeEnd(w io.Writer) error { return protocol.WriteFrame(w, frameEnd) }

// Doc is one document received.
type Doc struct {
	Kind byte
	Raw  []byte
}

// readDocuments reads document frames up to an end frame: at most one of
// each spread kind. It checks the form of the frames, not the documents.
func readDocuments(r io.Reader) ([]Doc, error) {
	var docs []Doc
	for {
		typ, p, err := protocol.ReadFrame(r, maxDocFrame)
		if err != nil {
			return docs, fmt.Errorf("read document: %w", wrapFrameErr(err))
		}
		switch typ {
		case frameEnd:
			if len(p) != 0 {
				return docs, fmt.Errorf("%w: end frame of %d bytes", ErrMalformed, len(p))
			}
			return docs, nil
		case frameDocument:
		default:
			return docs, fmt.Errorf("%w: frame type %#x where a document or end belongs", ErrMalformed, typ)
		}
		if len(p) < 1 {
			return docs, fmt.Errorf("%w: empty document frame", ErrMalformed)
		}
		kind := p[0]
		if kind != cert.KindRevocations && kind != cert.KindPolicy {
			return docs, fmt.Errorf("%w: document of kind %#x", ErrMalformed, kind)
		}
		for _, d := range docs {
			if d.Kind == kind {
				return docs, fmt.Errorf("%w: a second %s in one exchange", ErrMalformed, cert.KindName(kind))
			}
		}
		docs = append(docs, Doc{Kind: kind, Raw: p[1:]})
	}
}

func wrapFrameErr(err error) error {
	if errors.Is(err, protocol.ErrFrameTooLarge) {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return err
}
