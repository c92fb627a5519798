package resume

import (
	"sync"

	"github.com/overlay-net/overlay/protocol"
)

// A chunk is a run of bytes in a pooled buffer of protocol.MaxResumeFrame
// bytes: (*b)[lo:hi]. Send buffers fill chunks up to chunkSize and hand
// them back once acknowledged; received frames are read into them and
// handed back once read, so that a busy session allocates nothing per
// frame.
type chunk struct {
	b      *[]byte
	lo, hi int
}

// chunkSize is how much of a pooled buffer a send chunk fills: one data
// frame's worth.
const chunkSize = protocol.MaxResumeData

var pool = sync.Pool{New: func() any { b := make([]byte, protocol.MaxResumeFrame); return &b }}

func getBuf() *[]byte  { return pool.Get().(*[]byte) }
func putBuf(b *[]byte) { pool.Put(b) }

func (c chunk) data() []byte { return (*c.b)[c.lo:c.hi] }
