package tun

import "sync/atomic"

// Drop is why the engine dropped a packet. The set is closed: a typo
// cannot mint a counter.
type Drop int

const (
	DropNoMember    Drop = iota // to an overlay address no member holds (answered: unreachable)
	DropDeniedOut               // the policy denies it, sending side (answered: prohibited)
	DropDeniedIn                // the policy denies it, receiving side (answered: prohibited)
	DropUnreachable             // no stream to the member could be opened (answered: unreachable)
	DropQueueFull               // the member's send queue was full
	DropSpoofed                 // arrived with a source that is not its sender's address
	DropNotOurs                 // arrived for an address that is not this node's
	DropTooBig                  // arrived above this interface's MTU (answered: too big)
	DropMalformed               // not an IPv4 or IPv6 packet
	DropOffOverlay              // read from the interface for an address outside the overlay
	numDrops
)

var dropNames = [numDrops]string{"no-member", "denied-out", "denied-in", "unreachable", "queue-full",
	"spoofed", "not-ours", "too-big", "malformed", "off-overlay"}

// DropReasons are the reasons a drop is counted under, in order.
func DropReasons() []string { return dropNames[:] }

func (d Drop) String() string {
	if d < 0 || d >= numDrops {
		return "unknown"
	}
	return dropNames[d]
}

// Stats are an engine's counts since it started.
type Stats struct {
	PacketsOut, PacketsIn uint64
	BytesOut, BytesIn     uint64
	StreamsOpened         uint64 // packet streams this node opened
	Repaths               uint64 // streams moved to a new direct connection
	InlineWrites          uint64 // batches the read loop wrote itself, without waking the link's goroutine
	Drops                 map[string]uint64
}

type counters struct {
	pktOut, pktIn, bytesOut, bytesIn, opened, repaths, inline atomic.Uint64
	drops                                                     [numDrops]atomic.Uint64
}

// Stats returns the engine's counts.
func (e *Engine) Stats() Stats {
	c := &e.counts
	s := Stats{PacketsOut: c.pktOut.Load(), PacketsIn: c.pktIn.Load(), BytesOut: c.bytesOut.Load(),
		BytesIn: c.bytesIn.Load(), StreamsOpened: c.opened.Load(), Repaths: c.repaths.Load(),
		InlineWrites: c.inline.Load(),
		Drops:        map[string]uint64{}}
	for d := range numDrops {
		if n := c.drops[d].Load(); n > 0 {
			s.Drops[d.String()] = n
		}
	}
	return s
}

func (e *Engine) drop(d Drop) { e.counts.drops[d].Add(1) }
