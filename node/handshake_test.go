package node_test

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/book"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
)

// nt.LogBuffer is a log sink that many goroutines may write to.

// withLog sends the node's log, at debug level, to buf.

// awaitBooked waits until self books other as a member of the given role
// reached over path.
func awaitBooked(t *testing.T, self, other *node.Node, role protocol.Role, path book.Path) book.PeerInfo {
	t.Helper()
	var p book.PeerInfo
	nt.Eventually(t, 10*time.Second, "member "+string(role)+" over "+string(path), func() bool {
		var ok bool
		p, ok = self.Book().Get(other.ID())
		return ok && p.State == book.StateMember && p.Role == role && p.Path == path
	})
	if p.Agent != node.Agent || p.Version != protocol.Version || p.Reason != "" {
		t.Errorf("%s books %s as %+v: want agent %q, version %d, no reason",
			self.ID(), other.ID(), p, node.Agent, protocol.Version)
	}
	return p
}

// The handshake runs on every new connection whichever side dials and
// whatever carries it, and both sides book the other as a member.
func TestHandshakeCompletes(t *testing.T) {
	for _, tr := range []string{"tcp", "ws"} {
		for _, dir := range []string{"a-dials-b", "b-dials-a"} {
			t.Run(tr+"/"+dir, func(t *testing.T) {
				a, b := nt.Relay(t), nt.Relay(t)
				from, to := a, b
				if dir == "b-dials-a" {
					from, to = b, a
				}
				addr := nt.TCPAddr(t, to)
				if tr == "ws" {
					addr = nt.WSAddr(t, to)
				}
				info, err := from.Connect(nt.Context(t, 10*time.Second), addr.String())
				if err != nil {
					t.Fatalf("connect over %s: %v", tr, err)
				}
				if info.State != book.StateMember || info.Role != protocol.RolePublic {
					t.Fatalf("Connect returned %+v, want a public member", info)
				}
				// The connection is the one asked for.
				var ws []bool
				for _, c := range from.Host().Network().ConnsToPeer(to.ID()) {
					ws = append(ws, strings.Contains(c.RemoteMultiaddr().String(), "/ws"))
				}
				if len(ws) == 0 || ws[0] != (tr == "ws") {
					t.Errorf("connections to peer are ws=%v, want %s", ws, tr)
				}
				if s, ok := to.WaitVerdict(nt.Context(t, 10*time.Second), from.ID()); !ok || s != book.StateMember {
					t.Errorf("responder's verdict = %q, %v; want member", s, ok)
				}
				for _, pair := range [][2]*node.Node{{from, to}, {to, from}} {
					p := awaitBooked(t, pair[0], pair[1], protocol.RolePublic, book.PathDirect)
					if len(p.Direct) == 0 || len(p.Relayed) != 0 {
						t.Errorf("%s books %s with direct %v, relayed %v; want its direct addresses only",
							pair[0].ID(), pair[1].ID(), p.Direct, p.Relayed)
					}
				}
			})
		}
	}
	for _, dir := range []string{"a-dials-b", "b-dials-a"} {
		t.Run("relayed/"+dir, func(t *testing.T) {
			r := nt.Relay(t)
			relays := []ma.Multiaddr{nt.WSAddr(t, r)}
			a, b := nt.Peer(t, relays), nt.Peer(t, relays)
			nt.Eventually(t, 10*time.Second, "both peers reserved", func() bool {
				return nt.Reserved(a, 1) && nt.Reserved(b, 1)
			})
			from, to := a, b
			if dir == "b-dials-a" {
				from, to = b, a
			}
			info, err := from.Connect(nt.Context(t, 10*time.Second), to.ID().String())
			if err != nil {
				t.Fatalf("connect through relay: %v", err)
			}
			if info.State != book.StateMember || info.Role != protocol.RolePrivate || info.Path != book.PathRelayed {
				t.Fatalf("Connect returned %+v, want a private member over a relayed path", info)
			}
			if s, ok := to.WaitVerdict(nt.Context(t, 10*time.Second), from.ID()); !ok || s != book.StateMember {
				t.Errorf("responder's verdict = %q, %v; want member", s, ok)
			}
			for _, pair := range [][2]*node.Node{{from, to}, {to, from}} {
				p := awaitBooked(t, pair[0], pair[1], protocol.RolePrivate, book.PathRelayed)
				if len(p.Relayed) == 0 || len(p.Direct) != 0 {
					t.Errorf("%s books %s with direct %v, relayed %v; want relayed addresses only",
						pair[0].ID(), pair[1].ID(), p.Direct, p.Relayed)
				}
			}
			awaitBooked(t, r, a, protocol.RolePrivate, book.PathDirect)
			awaitBooked(t, r, b, protocol.RolePrivate, book.PathDirect)
		})
	}
}

// A node of another network or version is refused: the caller learns why,
// each book and log words the refusal from its own side (the refuser as it
// told the peer, the refused node from its own point of view), and the
// connection is closed.
func TestHandshakeMismatch(t *testing.T) {
	v := fmt.Sprintf("versions %d to %d", protocol.MinVersion, protocol.Version)
	cases := []struct {
		name     string
		respOpts []nt.Option // the relay, which is dialed
		iniOpts  []nt.Option // the dialing node
		// refuser and refused are the reasons booked and logged on each side.
		refuser, refused string
		// iniRefuses is true when the dialing side is the one that refuses.
		iniRefuses bool
	}{
		{name: "network", respOpts: []nt.Option{nt.WithNetwork("alpha")}, iniOpts: []nt.Option{nt.WithNetwork("beta")},
			refuser: `network mismatch: peer is on "beta", this node is on "alpha"`,
			refused: `the peer is on network "alpha", this node is on "beta"`},
		{name: "version", iniOpts: []nt.Option{nt.WithVersion(99)},
			refuser: fmt.Sprintf("incompatible version: peer speaks version 99, this node accepts %d to %d", protocol.MinVersion, protocol.Version),
			refused: "the peer accepts handshake " + v + ", this node speaks 99"},
		// The dialed side announces version 99; this build's check on the
		// dialing side refuses it after the responder accepted.
		{name: "version-refused-by-dialer", respOpts: []nt.Option{nt.WithVersion(99)}, iniRefuses: true,
			refuser: fmt.Sprintf("incompatible version: peer speaks version 99, this node accepts %d to %d", protocol.MinVersion, protocol.Version),
			refused: "the peer accepts handshake " + v + ", this node speaks 99"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var respLog, iniLog nt.LogBuffer
			resp := nt.Relay(t, append(c.respOpts, nt.WithLogBuffer(&respLog))...)
			ini := nt.Relay(t, append(c.iniOpts, nt.WithLogBuffer(&iniLog))...)
			refuser, refused := resp, ini
			refuserLog, refusedLog := &respLog, &iniLog
			if c.iniRefuses {
				refuser, refused = ini, resp
				refuserLog, refusedLog = &iniLog, &respLog
			}

			_, err := ini.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, resp).String())
			if !errors.Is(err, node.ErrRejected) {
				t.Fatalf("Connect = %v, want an error wrapping ErrRejected", err)
			}
			want := fmt.Sprintf("%s refused this node: %s", resp.ID(), c.refused)
			if c.iniRefuses {
				want = fmt.Sprintf("this node refused %s: %s", resp.ID(), c.refuser)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Connect error\n %q\ndoes not say\n %q", err, want)
			}
			if s, ok := resp.WaitVerdict(nt.Context(t, 10*time.Second), ini.ID()); !ok || s != book.StateRejected {
				t.Errorf("responder's verdict = %q, %v; want rejected", s, ok)
			}
			sides := []struct {
				self, other *node.Node
				reason, by  string
			}{{refuser, refused, c.refuser, book.RefusedBySelf}, {refused, refuser, c.refused, book.RefusedByPeer}}
			for _, side := range sides {
				var p book.PeerInfo
				nt.Eventually(t, 10*time.Second, "rejected in book", func() bool {
					var ok bool
					p, ok = side.self.Book().Get(side.other.ID())
					return ok && p.State == book.StateRejected
				})
				if p.Reason != side.reason || p.RefusedBy != side.by {
					t.Errorf("%s books %s with reason %q refused by %q, want %q by %q",
						side.self.ID(), side.other.ID(), p.Reason, p.RefusedBy, side.reason, side.by)
				}
				nt.Eventually(t, 10*time.Second, "connection closed", func() bool {
					return side.self.Host().Network().Connectedness(side.other.ID()) != network.Connected
				})
			}
			nt.Eventually(t, 5*time.Second, "both logs word the reason for their side", func() bool {
				a, b := refuserLog.String(), refusedLog.String()
				return strings.Contains(a, "refused peer") && strings.Contains(a, strconvQuote(c.refuser)) &&
					strings.Contains(b, "peer refused this node") && strings.Contains(b, strconvQuote(c.refused))
			})
		})
	}
}

// strconvQuote is how slog's text handler writes a value with quotes in it.
func strconvQuote(s string) string { return strconv.Quote(s) }

// rawHost is a plain libp2p host that does not speak the overlay handshake.
func rawHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// badHandshake opens a handshake stream from a raw host to r, writes
// payload, and returns how long it took r to end the stream.
func badHandshake(t *testing.T, r *node.Node, h host.Host, payload []byte) time.Duration {
	t.Helper()
	ai, err := peer.AddrInfoFromP2pAddr(nt.TCPAddr(t, r))
	if err != nil {
		t.Fatal(err)
	}
	ctx := nt.Context(t, 10*time.Second)
	if err := h.Connect(ctx, *ai); err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStream(ctx, r.ID(), protocol.HandshakeID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	start := time.Now()
	if len(payload) > 0 {
		if _, err := s.Write(payload); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	margin := 5 * time.Second
	_ = s.SetReadDeadline(start.Add(protocol.HandshakeTimeout + margin))
	buf := make([]byte, 1024)
	var rerr error
	for rerr == nil {
		var n int
		n, rerr = s.Read(buf)
		if n > 0 {
			t.Errorf("relay answered a bad handshake with %q", buf[:n])
		}
	}
	el := time.Since(start)
	if errors.Is(rerr, os.ErrDeadlineExceeded) {
		t.Fatalf("relay kept the stream open for %s (HandshakeTimeout %s)", el, protocol.HandshakeTimeout)
	}
	t.Logf("stream ended after %s: %v", el.Round(time.Millisecond), rerr)
	nt.Eventually(t, 5*time.Second, "relay closed the connection", func() bool {
		return h.Network().Connectedness(r.ID()) != network.Connected
	})
	return el
}

// stillServes checks that a proper overlay peer can join r.
func stillServes(t *testing.T, r *node.Node) {
	t.Helper()
	p := nt.Peer(t, nil)
	info, err := p.Connect(nt.Context(t, 10*time.Second), nt.WSAddr(t, r).String())
	if err != nil || info.State != book.StateMember {
		t.Fatalf("a proper peer cannot join after bad input: %+v, %v", info, err)
	}
	awaitBooked(t, r, p, protocol.RolePrivate, book.PathDirect)
}

// Malformed and oversized hellos are refused at once: the stream and the
// connection are closed, the sender is booked as rejected, and the relay
// goes on serving.
func TestHandshakeBadInput(t *testing.T) {
	cases := []struct {
		name    string
		payload []byte
		reason  string
	}{
		{"malformed", append([]byte{0x01, 0, 0, 0, 9}, "{not json"...), "malformed"},
		{"oversized", []byte{0x01, 0x40, 0, 0, 0}, "frame too large"}, // announces 1 GiB
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := nt.Relay(t)
			h := rawHost(t)
			badHandshake(t, r, h, c.payload)
			p, ok := r.Book().Get(h.ID())
			if !ok || p.State != book.StateRejected || !strings.Contains(p.Reason, c.reason) {
				t.Errorf("relay books the sender as %+v, want rejected naming %q", p, c.reason)
			}
			stillServes(t, r)
		})
	}
}

// A peer that opens the handshake and sends nothing is cut off after
// HandshakeTimeout, and the relay goes on serving. This waits out the
// real timeout (10 s).
func TestHandshakeStalledInput(t *testing.T) {
	r := nt.Relay(t)
	h := rawHost(t)
	el := badHandshake(t, r, h, nil)
	if el < protocol.HandshakeTimeout-time.Second {
		t.Errorf("stalled stream ended after %s, before HandshakeTimeout %s", el, protocol.HandshakeTimeout)
	}
	if p, ok := r.Book().Get(h.ID()); ok && p.State == book.StateRejected {
		t.Errorf("a stall is not a refusal, but the relay books the peer as %+v", p)
	}
	stillServes(t, r)
}

// A member that goes away and comes back (same identity) on another network
// is checked again: the verdict of its first connection is not trusted for
// the new one.
func TestHandshakeReconnectRechecked(t *testing.T) {
	a := nt.Relay(t, nt.WithNetwork("alpha"))
	key := nt.Key(t)
	b := nt.Relay(t, nt.WithNetwork("alpha"), nt.WithKey(key))
	if _, err := a.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, b).String()); err != nil {
		t.Fatal(err)
	}
	b.Close()
	nt.Eventually(t, 10*time.Second, "a sees b gone", func() bool {
		return a.Host().Network().Connectedness(b.ID()) != network.Connected
	})

	b2 := nt.Relay(t, nt.WithNetwork("beta"), nt.WithKey(key))
	info, err := a.Connect(nt.Context(t, 10*time.Second), nt.TCPAddr(t, b2).String())
	if err == nil {
		// Wait for the real outcome to show what Connect should have said.
		nt.Eventually(t, 10*time.Second, "handshake outcome", func() bool {
			p, _ := a.Book().Get(b2.ID())
			return p.State == book.StateRejected
		})
		t.Fatalf("Connect to a former member now on another network returned %+v, nil", info)
	}
	if !errors.Is(err, node.ErrRejected) || !strings.Contains(err.Error(), `is on network "beta"`) {
		t.Fatalf("Connect = %v, want ErrRejected naming the network mismatch", err)
	}
}
