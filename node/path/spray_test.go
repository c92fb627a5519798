package path

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"

	"github.com/overlay-net/overlay/node/netcheck"
)

// udpSock is a PacketSocket on a real loopback UDP socket.
type udpSock struct {
	c    *net.UDPConn
	mu   sync.Mutex
	fn   func([]byte, *net.UDPAddr)
	done chan struct{}
}

func newUDPSock(t *testing.T) *udpSock {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	u := &udpSock{c: c, done: make(chan struct{})}
	go func() {
		defer close(u.done)
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			u.mu.Lock()
			fn := u.fn
			u.mu.Unlock()
			if fn != nil {
				fn(buf[:n], from)
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-u.done
	})
	return u
}

func (u *udpSock) WriteTo(b []byte, to *net.UDPAddr) (int, error) { return u.c.WriteTo(b, to) }
func (u *udpSock) HandleOther(fn func([]byte, *net.UDPAddr)) {
	u.mu.Lock()
	u.fn = fn
	u.mu.Unlock()
}
func (u *udpSock) addr() *net.UDPAddr { return u.c.LocalAddr().(*net.UDPAddr) }

// sprayPair is an easy and a hard side on loopback, connected over TCP
// (the protocol does not care which connection carries it), each with a
// UDP socket standing in for its QUIC one. The easy side sprays only the
// 64 ports around the hard side's socket.
func sprayPair(t *testing.T, easyClass string) (easy, hard *Manager, sockH *udpSock, dialled chan netip.AddrPort) {
	t.Helper()
	easy, hard = manager(t, false), manager(t, false)
	sockE, sockH := newUDPSock(t), newUDPSock(t)
	easy.cfg.NAT = func() NATInfo { return NATInfo{Class: easyClass, Mapped: sockE.addr().String()} }
	hard.cfg.NAT = func() NATInfo {
		return NATInfo{Class: netcheck.ClassEndpointDependent, Mapped: sockH.addr().String()}
	}
	easy.cfg.Packets = func() PacketSocket { return sockE }
	hard.cfg.Packets = func() PacketSocket { return sockH }
	dialled = make(chan netip.AddrPort, 1)
	for _, m := range []*Manager{easy, hard} {
		m.spray.public = func(netip.Addr) bool { return true }
		m.spray.portMin, m.spray.ports = max(1, sockH.addr().Port-32), 64
		m.spray.dial = func(_ context.Context, _ peer.ID, from netip.AddrPort) bool {
			dialled <- from
			return true
		}
		m.cfg.Host.SetStreamHandler(SprayProtocol, m.handleSpray)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hard.cfg.Host.Connect(ctx, peer.AddrInfo{ID: easy.cfg.Host.ID(), Addrs: easy.cfg.Host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return easy, hard, sockH, dialled
}

// sprayToDial runs one attempt of hard with easy and fails t unless it
// ran and the easy side then dialled the hard side's socket.
func sprayToDial(t *testing.T, easy, hard *Manager, sockH *udpSock, dialled <-chan netip.AddrPort, loud bool) {
	t.Helper()
	if st, err := hard.sprayHard(easy.cfg.Host.ID(), loud); err != nil || st != sprayOK {
		t.Fatalf("sprayHard = %v, %v", st, err)
	}
	select {
	case got := <-dialled:
		if got != sockH.addr().AddrPort() {
			t.Errorf("dialled %s, want the hard side's socket %s", got, sockH.addr())
		}
	default:
		t.Fatal("the easy side dialled nothing")
	}
}

// The easy side learns the hard side's port from its probe, and dials it.
func TestSprayFindsTheHardSidesPort(t *testing.T) {
	easy, hard, sockH, dialled := sprayPair(t, netcheck.ClassEndpointIndependent)
	sprayToDial(t, easy, hard, sockH, dialled, false)
	e, h := easy.SprayStats(), hard.SprayStats()
	if e.Attempts != 1 || e.Direct != 1 || e.Packets == 0 || e.Packets > 64 {
		t.Errorf("easy side: %+v, want 1 attempt, 1 direct, 1 to 64 packets", e)
	}
	if h.Attempts != 1 || h.Probes == 0 || h.Probes > maxSprayProbes {
		t.Errorf("hard side: %+v", h)
	}
	if st, _ := easy.spray.peerStatus(hard.cfg.Host.ID()); st != sprayHardToo {
		t.Errorf("easy side's note of the peer's NAT: %v", st)
	}
}

// Two hard sides: the request is refused, and Why says so on both.
func TestSprayBothSymmetric(t *testing.T) {
	easy, hard, _, dialled := sprayPair(t, netcheck.ClassEndpointDependent)
	st, err := hard.sprayHard(easy.cfg.Host.ID(), false)
	if err != nil || st != sprayHardToo {
		t.Fatalf("sprayHard = %v, %v; want %v", st, err, sprayHardToo)
	}
	if len(dialled) != 0 || easy.SprayStats().Packets != 0 {
		t.Errorf("sprayed anyway: %+v", easy.SprayStats())
	}
	for _, m := range []*Manager{hard, easy} {
		other := hard.cfg.Host.ID()
		if m == hard {
			other = easy.cfg.Host.ID()
		}
		m.startPunching()
		if err := m.cfg.Host.Peerstore().AddProtocols(other, holepunch.Protocol); err != nil {
			t.Fatal(err)
		}
		m.punch.Trace(&holepunch.Event{Remote: other, Evt: &holepunch.StartHolePunchEvt{}})
		m.punch.Trace(&holepunch.Event{Remote: other, Evt: &holepunch.EndHolePunchEvt{Error: "no"}})
		if w := m.Why(other, LocalNAT{Symmetric: true}); w.Reason != WhyBothSymmetric {
			t.Errorf("why: %+v", w)
		}
	}
}

// An easy side sprays at most maxSprays times per peer within the window.
func TestSprayBound(t *testing.T) {
	s := newSprayer()
	for i := range maxSprays {
		if !s.allow("p") {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	if s.allow("p") {
		t.Error("attempt past maxSprays allowed")
	}
	if !s.allow("q") {
		t.Error("another peer refused")
	}
}

func TestSprayWire(t *testing.T) {
	req := sprayRequest{class: classHard, ip: netip.MustParseAddr("7.7.2.1")}
	req.token[3] = 9
	got, err := parseSprayRequest(req.marshal())
	if err != nil || got != req {
		t.Errorf("request round trip: %+v, %v", got, err)
	}
	rep := sprayReply{status: sprayOK, addr: netip.MustParseAddrPort("7.7.1.1:4242")}
	if got, err := parseSprayReply(rep.marshal()); err != nil || got != rep {
		t.Errorf("reply round trip: %+v, %v", got, err)
	}
	if _, err := parseSprayRequest(append(req.marshal(), 0)); err == nil {
		t.Error("long request accepted")
	}
	kind, tok, ok := parseSprayPacket(sprayPacket(kindProbe, req.token))
	if !ok || kind != kindProbe || tok != req.token {
		t.Error("probe round trip")
	}
	if b := sprayPacket(kindSpray, req.token); b[0]&0xc0 != 0 || b[4] == 0x21 {
		t.Error("a spray packet quic-go or netcheck would take")
	}
}

func FuzzSprayWire(f *testing.F) {
	req := sprayRequest{class: classHard, ip: netip.MustParseAddr("7.7.2.1")}
	f.Add(req.marshal())
	f.Add(sprayReply{status: sprayOK, addr: netip.MustParseAddrPort("7.7.1.1:4242")}.marshal())
	f.Add(sprayPacket(kindProbe, req.token))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := parseSprayRequest(b); err == nil && !bytes.Equal(r.marshal(), b) {
			t.Errorf("request %x re-encodes as %x", b, r.marshal())
		}
		if r, err := parseSprayReply(b); err == nil && r.status == sprayOK && !bytes.Equal(r.marshal(), b) {
			t.Errorf("reply %x re-encodes as %x", b, r.marshal())
		}
		if kind, tok, ok := parseSprayPacket(b); ok && !bytes.Equal(sprayPacket(kind, tok), b) {
			t.Errorf("packet %x re-encodes differently", b)
		}
	})
}

// loggedSock records what the hard side writes loud (through the socket)
// and when E's spray packet reached it.
type loggedSock struct {
	*udpSock
	mu      sync.Mutex
	loud    []time.Time
	sprayed time.Time // first spray packet's arrival
}

func (l *loggedSock) WriteTo(b []byte, to *net.UDPAddr) (int, error) {
	l.mu.Lock()
	l.loud = append(l.loud, time.Now())
	l.mu.Unlock()
	return l.udpSock.WriteTo(b, to)
}

func (l *loggedSock) HandleOther(fn func([]byte, *net.UDPAddr)) {
	l.udpSock.HandleOther(func(b []byte, from *net.UDPAddr) {
		if kind, _, ok := parseSprayPacket(b); ok && kind == kindSpray {
			l.mu.Lock()
			if l.sprayed.IsZero() {
				l.sprayed = time.Now()
			}
			l.mu.Unlock()
		}
		fn(b, from)
	})
}

// quietDrop stands in for a quiet send whose packet dies before the
// peer's router: it counts and delivers nothing.
type quietDrop struct{ n atomic.Int64 }

func (q *quietDrop) send([]byte, netip.AddrPort) error { q.n.Add(1); return nil }

// The hard side probes quietly (nothing reaches E) until E's spray packet
// arrives, and only then answers loud, which is how E learns its port.
func TestSprayHardSideQuietUntilSprayed(t *testing.T) {
	easy, hard, sockH, dialled := sprayPair(t, netcheck.ClassEndpointIndependent)
	ls := &loggedSock{udpSock: sockH}
	hard.cfg.Packets = func() PacketSocket { return ls }
	var q quietDrop
	hard.spray.quiet = q.send
	sprayToDial(t, easy, hard, sockH, dialled, false)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if q.n.Load() == 0 {
		t.Error("no quiet probe before the spray")
	}
	if ls.sprayed.IsZero() || len(ls.loud) == 0 || ls.loud[0].Before(ls.sprayed) {
		t.Fatalf("loud probes at %v, spray arrived at %v: want loud ones only after the spray", ls.loud, ls.sprayed)
	}
	if len(ls.loud) > sprayAnswers {
		t.Errorf("%d loud probes, want at most %d", len(ls.loud), sprayAnswers)
	}
	if w := hard.spray.quietFor(easy.cfg.Host.ID()); w != 0 {
		t.Errorf("quiet probing left a wait of %v", w)
	}
}

// When E's spray never reaches it, the hard side sends nothing loud at all.
func TestSprayHardSideSilentWithoutSpray(t *testing.T) {
	easy, hard, sockH, dialled := sprayPair(t, netcheck.ClassEndpointIndependent)
	// E sprays 64 ports that are not H's.
	easy.spray.portMin = sockH.addr().Port + 1000
	if easy.spray.portMin+64 > 65535 {
		easy.spray.portMin = sockH.addr().Port - 1000
	}
	ls := &loggedSock{udpSock: sockH}
	hard.cfg.Packets = func() PacketSocket { return ls }
	var q quietDrop
	hard.spray.quiet = q.send
	if st, err := hard.sprayHard(easy.cfg.Host.ID(), false); err != nil || st != sprayOK {
		t.Fatalf("sprayHard = %v, %v", st, err)
	}
	if len(dialled) != 0 {
		t.Error("the easy side dialled without a probe")
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if len(ls.loud) != 0 || q.n.Load() == 0 {
		t.Errorf("%d loud probes, %d quiet: want none loud, some quiet", len(ls.loud), q.n.Load())
	}
}

// Without a way to send quietly the hard side probes loud, as before, and
// notes it so that its next attempt waits for the NAT entries to expire.
func TestSprayHardSideLoudFallback(t *testing.T) {
	easy, hard, sockH, dialled := sprayPair(t, netcheck.ClassEndpointIndependent)
	hard.spray.quiet = func([]byte, netip.AddrPort) error { return errNoSocket }
	sprayToDial(t, easy, hard, sockH, dialled, false)
	if w := hard.spray.quietFor(easy.cfg.Host.ID()); w < udpForget || w > udpForget+punchLoudFor {
		t.Errorf("wait after loud probes %v, want %v to %v", w, udpForget, udpForget+punchLoudFor)
	}
}

// An attempt from sprayLoudFrom on probes loud from the start, though it
// could send quietly (a hard side behind two NATs needs that), and still
// ends direct.
func TestSprayHardSideLoudAttempt(t *testing.T) {
	easy, hard, sockH, dialled := sprayPair(t, netcheck.ClassEndpointIndependent)
	ls := &loggedSock{udpSock: sockH}
	hard.cfg.Packets = func() PacketSocket { return ls }
	var q quietDrop
	hard.spray.quiet = q.send
	sprayToDial(t, easy, hard, sockH, dialled, true)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if n := q.n.Load(); n != 0 {
		t.Errorf("%d quiet probes in a loud attempt", n)
	}
	if len(ls.loud) == 0 || (!ls.sprayed.IsZero() && !ls.loud[0].Before(ls.sprayed)) {
		t.Errorf("loud probes at %v, spray arrived at %v: want a loud one before the spray", ls.loud, ls.sprayed)
	}
}

func TestSprayQuietFor(t *testing.T) {
	s := newSprayer()
	if w := s.quietFor("p"); w != 0 {
		t.Errorf("no punch yet: wait %v", w)
	}
	s.noteLoud("p")
	if w := s.quietFor("p"); w <= udpForget || w > udpForget+punchLoudFor {
		t.Errorf("after a punch: wait %v, want (%v, %v]", w, udpForget, udpForget+punchLoudFor)
	}
	if w := s.quietFor("q"); w != 0 {
		t.Errorf("another peer: wait %v", w)
	}
}
