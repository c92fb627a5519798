package api_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/overlay-net/overlay/node/api"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/node/topics"
)

// A subscription stream carries a topic's messages, text and binary, in
// order, and the topics list shows the follower; closing the API ends the
// stream.
func TestTopicsAPI(t *testing.T) {
	pub := nt.Peer(t, nil, nt.WithDirect(0))
	sub := nt.Peer(t, nil, nt.WithDirect(0))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := pub.Connect(ctx, sub.FullAddrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	cp := serve(t, pub)
	s, err := api.Listen("127.0.0.1:0", sub, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := api.NewClient(s.Addr())

	got := make(chan api.TopicMessage, 4)
	done := make(chan error, 1)
	go func() {
		done <- cs.Subscribe(ctx, "news", func(m api.TopicMessage) error { got <- m; return nil }, nil)
	}()
	nt.Eventually(t, 20*time.Second, "publisher sees the follower", func() bool {
		if err := pub.Topics().Join("news"); err != nil {
			return false
		}
		ts, err := cp.Topics(ctx)
		return err == nil && len(ts) == 1 && len(ts[0].Peers) == 1
	})
	ts, err := cs.Topics(ctx)
	if err != nil || len(ts) != 1 || ts[0].Name != "news" || ts[0].Followers != 1 {
		t.Fatalf("follower's topics %+v, %v", ts, err)
	}
	for _, data := range [][]byte{[]byte("hello"), {0, 1, 0xff}} {
		res, err := cp.PublishTopic(ctx, "news", data, 5*time.Second)
		if err != nil || res.Peers != 1 {
			t.Fatalf("publish: %+v, %v", res, err)
		}
	}
	for i, want := range []string{"hello", "\x00\x01\xff"} {
		m := <-got
		data, err := m.Data()
		if err != nil || string(data) != want || m.Seq != uint64(i+1) || m.From != pub.ID().String() {
			t.Fatalf("message %d: %+v (%q, %v)", i, m, data, err)
		}
	}
	st, err := cp.TopicStats(ctx)
	if err != nil || st.Wire.RPCs == 0 || st.Wire.Bytes == 0 || st.Refusals == nil {
		t.Fatalf("publisher's topic stats %+v, %v; want RPCs and bytes sent", st, err)
	}
	if st.Backfill.Held < 2 {
		t.Fatalf("publisher's backfill %+v, want its 2 messages held for backfill", st.Backfill)
	}
	if _, err := cp.PublishTopic(ctx, "", []byte("x"), time.Second); apiCode(err) != http.StatusBadRequest {
		t.Fatalf("empty topic name: %v, want 400", err)
	}
	if _, err := cp.PublishTopic(ctx, "news", make([]byte, topics.MaxData+1), time.Second); apiCode(err) != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize: %v, want 413", err)
	}
	s.Close()
	if err := <-done; err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("stream after the API closed: %v, want it ended", err)
	}
}

func TestReadEvent(t *testing.T) {
	in := ": keepalive\n\nevent: message\ndata: {\"a\":1}\ndata: 2\n\nevent: big\ndata: " + strings.Repeat("x", 100) + "\n\n"
	r := bufio.NewReaderSize(strings.NewReader(in), 16)
	ev, err := api.ReadEvent(r, 64)
	if err != nil || ev.Name != "" {
		t.Fatalf("keepalive: %+v, %v", ev, err)
	}
	ev, err = api.ReadEvent(r, 64)
	if err != nil || ev.Name != "message" || string(ev.Data) != "{\"a\":1}\n2" {
		t.Fatalf("message: %+v, %v", ev, err)
	}
	if _, err := api.ReadEvent(r, 64); !errors.Is(err, api.ErrEventTooLarge) {
		t.Fatalf("oversize event: %v", err)
	}
}

// FuzzReadEvent: any stream gives events within the cap or an error.
func FuzzReadEvent(f *testing.F) {
	f.Add([]byte("event: message\ndata: {}\n\n"))
	f.Add([]byte(": c\n\n\n\ndata\n\n"))
	f.Add([]byte("data: " + strings.Repeat("y", 300) + "\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReaderSize(strings.NewReader(string(b)), 16)
		for {
			ev, err := api.ReadEvent(r, 256)
			if err != nil {
				return
			}
			if len(ev.Data)+len(ev.Name) > 256 {
				t.Fatalf("event of %d bytes over the cap", len(ev.Data)+len(ev.Name))
			}
		}
	})
}
