package relay

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	circuitproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"google.golang.org/protobuf/proto"
)

// An open relay serves two tiers. go-libp2p's relay applies one set of
// limits to every circuit, so each tier is its own circuit.Relay: members
// with the relay's limits (uncut circuits by default), strangers with
// stock ones. Each instance is built on a tierHost that keeps the hop
// protocol's handler instead of registering it; one dispatcher registered
// on the real host reads each hop stream's first message and hands the
// stream to the tier that serves it:
//
//   - RESERVE: the requester's tier.
//   - CONNECT from a stranger: the strangers' tier, which knows only
//     strangers' reservations, so a stranger cannot open a circuit to a
//     member (NO_RESERVATION).
//   - CONNECT from a member to a member: the members' tier.
//   - CONNECT from a member to a connected non-member: the strangers' tier,
//     where the destination's reservation lives; the circuit runs under the
//     strangers' limits, whichever side sends.
//
// The strangers' instance is further kept apart from the members': its
// connection-manager tags carry strangerTagSuffix, and its streams and
// buffers count against the resource manager's StrangerService, not
// go-libp2p's relay service, so strangers cannot use up the members'
// relay resources.
//
// This leans on three details of go-libp2p's relay (v0.51), checked at
// construction (checkTiers) and by TestOpenRelayHooks: circuit.New
// registers its hop handler with host.SetStreamHandler, takes its resource
// scope with Network().ResourceManager().ViewService(circuit.ServiceName),
// and tags peers through host.ConnManager().

// StrangerService is the resource-manager service that an open relay's
// strangers' tier counts its circuits' streams and buffers against, in
// place of go-libp2p's relay service (circuit.ServiceName).
const StrangerService = "overlay.relay.strangers"

// strangerTagSuffix sets the strangers' tier's connection-manager tags
// apart from the members' tier's ("relay-reservation", "relay-v2-hop").
const strangerTagSuffix = "/strangers"

// maxHopMessage is go-libp2p's cap on a hop message (relay.go's
// maxMessageSize): the dispatcher reads no more than the relay would.
const maxHopMessage = 4096

// hopReadTimeout bounds the wait for a hop stream's first message, as the
// relay's own StreamTimeout does.
const hopReadTimeout = circuit.StreamTimeout

// strangerResources sets rs to what an open relay gives non-members: stock
// go-libp2p relay limits (2 min and 128 KiB per circuit, 16 circuits per
// peer, 8 reservations per IP), and an eighth of the reservations, which
// it returns.
func strangerResources(cfg Config, rs *circuit.Resources) int {
	rs.MaxReservations = max(1, cfg.MaxReservations/8)
	rs.ReservationTTL = cfg.ReservationTTL
	return rs.MaxReservations
}

// tierHost is the host one tier's circuit.Relay is built on. It keeps the
// hop protocol's handler instead of registering it; for the strangers' tier
// (stranger set) it also renames the relay's resource-manager service and
// connection-manager tags.
type tierHost struct {
	host.Host
	stranger bool

	mu     sync.Mutex
	h      network.StreamHandler
	viewed bool // the relay took its resource scope through this host
}

func (w *tierHost) SetStreamHandler(pid protocol.ID, h network.StreamHandler) {
	if pid != circuitproto.ProtoIDv2Hop {
		w.Host.SetStreamHandler(pid, h)
		return
	}
	w.mu.Lock()
	w.h = h
	w.mu.Unlock()
}

func (w *tierHost) RemoveStreamHandler(pid protocol.ID) {
	if pid != circuitproto.ProtoIDv2Hop {
		w.Host.RemoveStreamHandler(pid)
		return
	}
	w.mu.Lock()
	w.h = nil
	w.mu.Unlock()
}

// captured reports whether the relay registered its hop handler here.
func (w *tierHost) captured() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.h != nil
}

func (w *tierHost) handle(s network.Stream) {
	w.mu.Lock()
	h := w.h
	w.mu.Unlock()
	if h == nil {
		s.Reset()
		return
	}
	h(s)
}

func (w *tierHost) Network() network.Network {
	if !w.stranger {
		return w.Host.Network()
	}
	return tierNetwork{w.Host.Network(), w}
}

func (w *tierHost) ConnManager() connmgr.ConnManager {
	if !w.stranger {
		return w.Host.ConnManager()
	}
	return tierConnMgr{w.Host.ConnManager()}
}

// NewStream opens the relay's stop stream to a circuit's destination.
func (w *tierHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := w.Host.NewStream(ctx, p, pids...)
	if err != nil || !w.stranger {
		return s, err
	}
	return &tierStream{Stream: s, r: s, stranger: true}, nil
}

// tierNetwork hands the strangers' relay the resource manager that renames
// its service.
type tierNetwork struct {
	network.Network
	w *tierHost
}

func (n tierNetwork) ResourceManager() network.ResourceManager {
	return tierRM{n.Network.ResourceManager(), n.w}
}

type tierRM struct {
	network.ResourceManager
	w *tierHost
}

func (r tierRM) ViewService(name string, f func(network.ServiceScope) error) error {
	if name == circuit.ServiceName {
		name = StrangerService
		r.w.mu.Lock()
		r.w.viewed = true
		r.w.mu.Unlock()
	}
	return r.ResourceManager.ViewService(name, f)
}

// tierConnMgr renames the strangers' relay's tags.
type tierConnMgr struct{ connmgr.ConnManager }

func (c tierConnMgr) TagPeer(p peer.ID, tag string, v int) {
	c.ConnManager.TagPeer(p, tag+strangerTagSuffix, v)
}

func (c tierConnMgr) UntagPeer(p peer.ID, tag string) {
	c.ConnManager.UntagPeer(p, tag+strangerTagSuffix)
}

func (c tierConnMgr) UpsertTag(p peer.ID, tag string, upsert func(int) int) {
	c.ConnManager.UpsertTag(p, tag+strangerTagSuffix, upsert)
}

// tierStream is a hop stream handed to a tier: it replays the first
// message the dispatcher read, and for the strangers' tier attaches the
// stream to StrangerService instead of the relay service.
type tierStream struct {
	network.Stream
	r        io.Reader
	stranger bool
}

func (s *tierStream) Read(p []byte) (int, error) { return s.r.Read(p) }

func (s *tierStream) Scope() network.StreamScope {
	if !s.stranger {
		return s.Stream.Scope()
	}
	return tierScope{s.Stream.Scope()}
}

type tierScope struct{ network.StreamScope }

func (t tierScope) SetService(name string) error {
	if name == circuit.ServiceName {
		name = StrangerService
	}
	return t.StreamScope.SetService(name)
}

// ErrHopMessage marks a hop stream whose first message could not be read.
var ErrHopMessage = errors.New("hop message")

// readHop reads one varint-delimited hop message of at most maxHopMessage
// bytes from r, reading nothing past it, and returns its bytes as read
// (to replay to the relay) with the decoded message.
func readHop(r io.Reader) ([]byte, *pbv2.HopMessage, error) {
	br := &recordingReader{r: r}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: read length: %v", ErrHopMessage, err)
	}
	if n > maxHopMessage {
		return nil, nil, fmt.Errorf("%w: %d bytes, more than %d", ErrHopMessage, n, maxHopMessage)
	}
	head := len(br.buf)
	raw := append(br.buf, make([]byte, n)...)
	if _, err := io.ReadFull(r, raw[head:]); err != nil {
		return nil, nil, fmt.Errorf("%w: read body: %v", ErrHopMessage, err)
	}
	var msg pbv2.HopMessage
	if err := proto.Unmarshal(raw[head:], &msg); err != nil {
		return nil, nil, fmt.Errorf("%w: decode: %v", ErrHopMessage, err)
	}
	return raw, &msg, nil
}

// recordingReader reads one byte at a time for binary.ReadUvarint and keeps
// what it read.
type recordingReader struct {
	r   io.Reader
	buf []byte
}

func (b *recordingReader) ReadByte() (byte, error) {
	var one [1]byte
	if _, err := io.ReadFull(b.r, one[:]); err != nil {
		return 0, err
	}
	b.buf = append(b.buf, one[0])
	return one[0], nil
}

// dispatcher hands each hop stream to the tier that serves it.
type dispatcher struct {
	h                  host.Host
	m                  Members
	vouch              func(peer.ID) error // nil: none (WithVouch)
	members, strangers *tierHost
}

func newDispatcher(h host.Host, m Members) *dispatcher {
	return &dispatcher{h: h, m: m, members: &tierHost{Host: h}, strangers: &tierHost{Host: h, stranger: true}}
}

func (d *dispatcher) register() { d.h.SetStreamHandler(circuitproto.ProtoIDv2Hop, d.handle) }

// checkTiers fails unless both tiers' relays registered their hop handler
// and the strangers' one took its resource scope through its tierHost: a
// go-libp2p release that did either another way would leave every hop
// stream reset, or strangers counted against the members' relay service.
func (d *dispatcher) checkTiers() error {
	for _, t := range []struct {
		name string
		w    *tierHost
	}{{"members'", d.members}, {"strangers'", d.strangers}} {
		if !t.w.captured() {
			return fmt.Errorf("open relay: the %s tier's go-libp2p relay did not register its hop handler (%s) "+
				"through host.SetStreamHandler, which the open relay's tiers rely on to dispatch hop streams", t.name, circuitproto.ProtoIDv2Hop)
		}
	}
	d.strangers.mu.Lock()
	viewed := d.strangers.viewed
	d.strangers.mu.Unlock()
	if !viewed {
		return fmt.Errorf("open relay: the strangers' go-libp2p relay did not take its resource scope through "+
			"Network().ResourceManager().ViewService(%q), which the open relay relies on to keep strangers "+
			"off the members' relay resources", circuit.ServiceName)
	}
	return nil
}

// handle reads the stream's first hop message, waits for the requester's
// handshake verdict (a stock peer's comes within seconds of identify), and
// serves the request in its tier (see the rules at the top of this file).
func (d *dispatcher) handle(s network.Stream) {
	_ = s.SetReadDeadline(time.Now().Add(hopReadTimeout))
	raw, msg, err := readHop(s)
	if err != nil {
		s.Reset()
		return
	}
	_ = s.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), aclWait)
	defer cancel()
	tier := d.strangers
	if p := s.Conn().RemotePeer(); d.m.IsMember(ctx, p) && (d.vouch == nil || d.vouch(p) == nil) {
		tier = d.members
		if msg.GetType() == pbv2.HopMessage_CONNECT && d.strangerDest(ctx, msg) {
			tier = d.strangers
		}
	}
	tier.handle(&tierStream{Stream: s, r: io.MultiReader(bytes.NewReader(raw), s), stranger: tier.stranger})
}

// strangerDest reports whether a CONNECT's destination is a non-member
// connected to the relay, so that its reservation, if any, is the
// strangers' tier's. A destination not connected has no reservation in
// either tier: it stays with the members' tier, which answers at once.
func (d *dispatcher) strangerDest(ctx context.Context, msg *pbv2.HopMessage) bool {
	dest, err := peer.IDFromBytes(msg.GetPeer().GetId())
	if err != nil || d.h.Network().Connectedness(dest) != network.Connected {
		return false
	}
	return !d.m.IsMember(ctx, dest)
}
