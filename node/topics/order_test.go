package topics

import (
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func testTopic(buffer int) (*topic, *Sub) {
	s := &Service{cfg: Config{Limits: DefaultLimits()}, log: slog.New(slog.DiscardHandler)}
	t := &topic{s: s, name: "t", followers: map[*Sub]struct{}{}}
	f := &Sub{t: t, ch: make(chan Message, buffer), done: make(chan struct{})}
	t.followers[f] = struct{}{}
	return t, f
}

func seqs(f *Sub) []uint64 {
	var out []uint64
	for {
		select {
		case m := <-f.ch:
			out = append(out, m.Seq)
		default:
			return out
		}
	}
}

// Out-of-order messages come out in sequence; one missing past the hold
// is counted on the message after it, and a late copy is not delivered.
func TestOrderHoldsAndCountsGaps(t *testing.T) {
	tp, f := testTopic(64)
	o := orderer{t: tp, pubs: map[peer.ID]*pubState{}}
	const a = peer.ID("a")
	now := time.Unix(1000, 0)
	for _, seq := range []uint64{2, 1, 3, 5, 6} {
		o.add(a, envelope{session: 7, seq: seq}, now)
	}
	if got := seqs(f); len(got) != 3 || got[0] != 1 || got[2] != 3 {
		t.Fatalf("delivered %v, want [1 2 3] and 5, 6 held", got)
	}
	o.tick(now.Add(tp.s.cfg.Limits.Hold / 2))
	if got := seqs(f); len(got) != 0 {
		t.Fatalf("delivered %v before the hold ended", got)
	}
	o.tick(now.Add(tp.s.cfg.Limits.Hold))
	got := seqs(f)
	if len(got) != 2 || got[0] != 5 || got[1] != 6 {
		t.Fatalf("after the hold delivered %v, want [5 6]", got)
	}
	if st := f.Stats(); st.Missed != 1 || st.Delivered != 5 {
		t.Fatalf("stats %+v, want 1 missed, 5 delivered", st)
	}
	o.add(a, envelope{session: 7, seq: 4}, now)
	if got := seqs(f); len(got) != 0 || tp.late.Load() != 1 {
		t.Fatalf("late message delivered (%v) or not counted (%d)", got, tp.late.Load())
	}
	// A new session (the publisher restarted) starts over at 1.
	o.add(a, envelope{session: 8, seq: 1}, now)
	if got := seqs(f); len(got) != 1 || got[0] != 1 {
		t.Fatalf("new session delivered %v, want [1]", got)
	}
}

// A follower joining mid-stream gets the earliest message it saw first,
// after the hold, with nothing counted missing.
func TestOrderMidStream(t *testing.T) {
	tp, f := testTopic(64)
	o := orderer{t: tp, pubs: map[peer.ID]*pubState{}}
	now := time.Unix(1000, 0)
	o.add("a", envelope{session: 1, seq: 41}, now)
	o.add("a", envelope{session: 1, seq: 40}, now)
	o.tick(now.Add(tp.s.cfg.Limits.Hold / 10))
	if got := seqs(f); len(got) != 2 || got[0] != 40 || got[1] != 41 {
		t.Fatalf("delivered %v, want [40 41]", got)
	}
	if f.Stats().Missed != 0 {
		t.Fatalf("missed %d joining mid-stream, want 0", f.Stats().Missed)
	}
}

// A full follower loses messages, counted, and the topic does not wait.
func TestOrderSlowFollowerDrops(t *testing.T) {
	tp, f := testTopic(2)
	o := orderer{t: tp, pubs: map[peer.ID]*pubState{}}
	now := time.Unix(1000, 0)
	for seq := uint64(1); seq <= 5; seq++ {
		o.add("a", envelope{session: 1, seq: seq}, now)
	}
	if st := f.Stats(); st.Delivered != 2 || st.Dropped != 3 {
		t.Fatalf("stats %+v, want 2 delivered, 3 dropped", st)
	}
}

// Too many held messages give up the missing ones without waiting.
func TestOrderHeldCap(t *testing.T) {
	tp, f := testTopic(maxHeld + 8)
	o := orderer{t: tp, pubs: map[peer.ID]*pubState{}}
	now := time.Unix(1000, 0)
	o.add("a", envelope{session: 1, seq: 1}, now)
	for seq := uint64(3); seq <= maxHeld+3; seq++ {
		o.add("a", envelope{session: 1, seq: seq}, now)
	}
	if st := f.Stats(); st.Missed != 1 || st.Delivered != maxHeld+2 {
		t.Fatalf("stats %+v, want 1 missed, %d delivered", st, maxHeld+2)
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(envelope{session: 1, seq: 1, data: []byte("hi")}.encode())
	f.Add([]byte{1})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		if e.seq == 0 || len(e.data) > MaxData {
			t.Fatalf("accepted %+v", e)
		}
		again, err := decodeEnvelope(e.encode())
		if err != nil || again.seq != e.seq || again.session != e.session || string(again.data) != string(e.data) {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}
