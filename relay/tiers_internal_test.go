package relay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	"google.golang.org/protobuf/proto"
)

func delimited(t testing.TB, msg *pbv2.HopMessage) []byte {
	t.Helper()
	body, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.AppendUvarint(nil, uint64(len(body))), body...)
}

// readHop reads exactly one message and hands back its bytes as read, so
// that the relay reading after it sees the stream as it came.
func TestReadHopReplays(t *testing.T) {
	dest := peer.ID("destination")
	msg := &pbv2.HopMessage{Type: pbv2.HopMessage_CONNECT.Enum(), Peer: &pbv2.Peer{Id: []byte(dest)}}
	wire := delimited(t, msg)
	rest := []byte("circuit data")
	raw, got, err := readHop(bytes.NewReader(append(append([]byte{}, wire...), rest...)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, wire) {
		t.Fatalf("raw = %x, want %x", raw, wire)
	}
	if got.GetType() != pbv2.HopMessage_CONNECT || string(got.GetPeer().GetId()) != string(dest) {
		t.Fatalf("decoded %v", got)
	}
}

func TestReadHopRefusesOversize(t *testing.T) {
	big := binary.AppendUvarint(nil, maxHopMessage+1)
	if _, _, err := readHop(bytes.NewReader(append(big, make([]byte, maxHopMessage+1)...))); !errors.Is(err, ErrHopMessage) {
		t.Fatalf("oversize message: %v, want ErrHopMessage", err)
	}
	if _, _, err := readHop(bytes.NewReader(binary.AppendUvarint(nil, 10))); !errors.Is(err, ErrHopMessage) {
		t.Fatalf("truncated message: %v, want ErrHopMessage", err)
	}
}

func FuzzReadHop(f *testing.F) {
	f.Add(delimited(f, &pbv2.HopMessage{Type: pbv2.HopMessage_RESERVE.Enum()}))
	f.Add(delimited(f, &pbv2.HopMessage{Type: pbv2.HopMessage_CONNECT.Enum(), Peer: &pbv2.Peer{Id: []byte("x")}}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		raw, msg, err := readHop(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrHopMessage) {
				t.Fatalf("error %v does not wrap ErrHopMessage", err)
			}
			return
		}
		if msg == nil || len(raw) > binary.MaxVarintLen64+maxHopMessage || !bytes.HasPrefix(b, raw) {
			t.Fatalf("raw %x is not a bounded prefix of the input", raw)
		}
	})
}

// A go-libp2p relay that registered its hop handler some other way leaves
// a tier with no handler: construction must fail and say why.
func TestCheckTiersNamesTheAssumption(t *testing.T) {
	d := newDispatcher(nil, nil)
	err := d.checkTiers()
	if err == nil || !strings.Contains(err.Error(), "SetStreamHandler") {
		t.Fatalf("no hop handler captured: %v, want an error naming SetStreamHandler", err)
	}
	d.members.h, d.strangers.h = func(s network.Stream) {}, func(s network.Stream) {}
	if err := d.checkTiers(); err == nil || !strings.Contains(err.Error(), "ViewService") {
		t.Fatalf("resource scope not taken through the tier host: %v, want an error naming ViewService", err)
	}
	d.strangers.viewed = true
	if err := d.checkTiers(); err != nil {
		t.Fatal(err)
	}
}
