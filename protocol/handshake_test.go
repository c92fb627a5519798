package protocol_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/protocol"
)

// Frame types as documented in protocol/handshake.go.
const (
	typeHello      = 0x01
	typeAccept     = 0x02
	typeReject     = 0x03
	typeRejectCode = 0x04
)

func hello(network string, version int, role protocol.Role) protocol.Hello {
	return protocol.Hello{
		Network: network,
		Version: version,
		Role:    role,
		Agent:   "test/1",
		Direct:  []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4100"), ma.StringCast("/ip4/127.0.0.1/tcp/4101/ws")},
		Relayed: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4101/ws/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit")},
	}
}

// tcpPair returns two ends of a real TCP loopback connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		a.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { a.Close(); r.c.Close() })
	return a, r.c
}

type conns func(t *testing.T) (net.Conn, net.Conn)

var transports = map[string]conns{
	"pipe": func(t *testing.T) (net.Conn, net.Conn) {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return a, b
	},
	"tcp": tcpPair,
}

type result struct {
	remote protocol.Hello
	err    error
}

// run runs Initiate on one end and Respond on the other and returns both
// outcomes.
func run(t *testing.T, mk conns, ini, resp protocol.Hello) (iniRes, respRes result) {
	t.Helper()
	return runWith(t, mk, ini, resp, nil)
}

// runWith is run with a custom admission check on the responder.
func runWith(t *testing.T, mk conns, ini, resp protocol.Hello, check protocol.Checker) (iniRes, respRes result) {
	t.Helper()
	a, b := mk(t)
	done := make(chan result, 1)
	go func() {
		r, err := protocol.RespondWith(b, resp, check)
		if err != nil {
			b.Close() // as the node does: a refusing side closes
		}
		done <- result{r, err}
	}()
	r, err := protocol.Initiate(a, ini)
	if err != nil {
		a.Close()
	}
	iniRes = result{r, err}
	select {
	case respRes = <-done:
	case <-time.After(protocol.HandshakeTimeout + 5*time.Second):
		t.Fatal("Respond did not return")
	}
	return iniRes, respRes
}

func equalHello(t *testing.T, got, want protocol.Hello) {
	t.Helper()
	if got.Network != want.Network || got.Version != want.Version || got.Role != want.Role || got.Agent != want.Agent {
		t.Errorf("hello = %+v, want %+v", got, want)
	}
	eq := func(a, b []ma.Multiaddr) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if !a[i].Equal(b[i]) {
				return false
			}
		}
		return true
	}
	if !eq(got.Direct, want.Direct) {
		t.Errorf("direct = %v, want %v", got.Direct, want.Direct)
	}
	if !eq(got.Relayed, want.Relayed) {
		t.Errorf("relayed = %v, want %v", got.Relayed, want.Relayed)
	}
}

func TestHandshakeRoundTrip(t *testing.T) {
	for name, mk := range transports {
		t.Run(name, func(t *testing.T) {
			ini := hello("net", protocol.Version, protocol.RolePrivate)
			resp := hello("net", protocol.Version, protocol.RolePublic)
			resp.Agent = "responder/2"
			resp.Direct = resp.Direct[:1]
			resp.Relayed = nil
			ir, rr := run(t, mk, ini, resp)
			if ir.err != nil {
				t.Fatalf("Initiate: %v", ir.err)
			}
			if rr.err != nil {
				t.Fatalf("Respond: %v", rr.err)
			}
			equalHello(t, ir.remote, resp)
			equalHello(t, rr.remote, ini)
		})
	}
}

// The responder refuses a hello of another network or version; both sides
// learn the reason.
func TestHandshakeResponderRejects(t *testing.T) {
	cases := []struct {
		name     string
		ini      protocol.Hello
		sentinel error
		text     string
	}{
		{"network", hello("beta", protocol.Version, protocol.RolePrivate), protocol.ErrNetworkMismatch, "network mismatch"},
		{"version", hello("alpha", protocol.Version+98, protocol.RolePrivate), protocol.ErrVersionMismatch, "incompatible version"},
	}
	for name, mk := range transports {
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				resp := hello("alpha", protocol.Version, protocol.RolePublic)
				ir, rr := run(t, mk, c.ini, resp)
				var rej *protocol.RejectedError
				if !errors.As(rr.err, &rej) || rej.ByPeer {
					t.Fatalf("Respond err = %v, want a RejectedError by us", rr.err)
				}
				if !strings.Contains(rej.Reason, c.text) {
					t.Errorf("responder reason %q does not name %q", rej.Reason, c.text)
				}
				if rr.remote.Network != c.ini.Network || rr.remote.Version != c.ini.Version {
					t.Errorf("Respond returned remote %+v, want the refused hello", rr.remote)
				}
				if !errors.As(ir.err, &rej) || !rej.ByPeer {
					t.Fatalf("Initiate err = %v, want a RejectedError by peer", ir.err)
				}
				if !strings.Contains(rej.Reason, c.text) {
					t.Errorf("initiator was told %q, which does not name %q", rej.Reason, c.text)
				}
			})
		}
	}
}

// The initiator refuses the responder's hello; the responder learns why.
func TestHandshakeInitiatorRejects(t *testing.T) {
	for name, mk := range transports {
		t.Run(name, func(t *testing.T) {
			ini := hello("alpha", protocol.Version, protocol.RolePrivate)
			// The responder accepts anything (it poses as a newer build
			// checking only the network) but announces version 99.
			resp := hello("alpha", 99, protocol.RolePublic)
			ir, rr := run(t, mk, ini, resp)
			// Respond checks ini: version 1 is fine for it.
			var rej *protocol.RejectedError
			if !errors.As(ir.err, &rej) || rej.ByPeer {
				t.Fatalf("Initiate err = %v, want a RejectedError by us", ir.err)
			}
			if !strings.Contains(rej.Reason, "incompatible version") {
				t.Errorf("initiator reason %q", rej.Reason)
			}
			if !errors.As(rr.err, &rej) || !rej.ByPeer {
				t.Fatalf("Respond err = %v, want a RejectedError by peer", rr.err)
			}
			if !strings.Contains(rej.Reason, "incompatible version") {
				t.Errorf("responder was told %q", rej.Reason)
			}
			// Version 99 reads frame 0x04: the responder learns the code
			// and the initiator's range.
			if rej.Refusal.Code != protocol.CodeVersion || !errors.Is(rr.err, protocol.ErrVersionMismatch) {
				t.Errorf("responder got refusal %+v", rej.Refusal)
			}
			want := fmt.Sprintf("the peer accepts handshake versions %d to %d, this node speaks 99", protocol.MinVersion, protocol.Version)
			if got := rej.Refusal.Explain("the peer", resp); got != want {
				t.Errorf("Explain = %q, want %q", got, want)
			}
		})
	}
}

// A reason sent by a peer cannot carry control characters into our logs.
func TestRejectReasonIsCleaned(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		_, _, _ = protocol.ReadFrame(b, protocol.MaxHelloSize) // our hello
		_ = protocol.WriteFrame(b, typeReject, []byte("bad\nlevel=ERROR msg=forged\x1b[31m"))
	}()
	_, err := protocol.Initiate(a, hello("n", protocol.Version, protocol.RolePrivate))
	var rej *protocol.RejectedError
	if !errors.As(err, &rej) || !rej.ByPeer {
		t.Fatalf("err = %v, want RejectedError by peer", err)
	}
	if strings.ContainsAny(rej.Reason, "\n\x1b") {
		t.Errorf("reason %q keeps control characters", rej.Reason)
	}
}

func TestCheck(t *testing.T) {
	local := hello("alpha", protocol.Version, protocol.RolePublic)
	if err := protocol.Check(local, hello("alpha", protocol.Version, protocol.RolePrivate)); err != nil {
		t.Errorf("same network and version: %v", err)
	}
	for _, c := range []struct {
		name   string
		remote protocol.Hello
		want   error
		names  []string
	}{
		{"network", hello("beta", protocol.Version, protocol.RolePrivate), protocol.ErrNetworkMismatch, []string{`"beta"`, `"alpha"`}},
		{"newer version", hello("alpha", protocol.Version+1, protocol.RolePrivate), protocol.ErrVersionMismatch, []string{fmt.Sprint(protocol.Version + 1)}},
		{"older version", hello("alpha", protocol.MinVersion-1, protocol.RolePrivate), protocol.ErrVersionMismatch, []string{fmt.Sprint(protocol.MinVersion - 1)}},
		{"version 99", hello("alpha", 99, protocol.RolePrivate), protocol.ErrVersionMismatch, []string{"99"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := protocol.Check(local, c.remote)
			if !errors.Is(err, c.want) {
				t.Fatalf("Check = %v, want %v", err, c.want)
			}
			for _, s := range c.names {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %s", err, s)
				}
			}
		})
	}
	// Network is checked first: a peer on another network hears that, not
	// a version complaint.
	if err := protocol.Check(local, hello("beta", 99, protocol.RolePrivate)); !errors.Is(err, protocol.ErrNetworkMismatch) {
		t.Errorf("both differ: %v, want network mismatch", err)
	}
}

func TestEncodeDecodeHello(t *testing.T) {
	h := hello("net", protocol.Version, protocol.RolePublic)
	b, err := protocol.EncodeHello(h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := protocol.DecodeHello(b)
	if err != nil {
		t.Fatal(err)
	}
	equalHello(t, got, h)
}

func wire(m map[string]any) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func validWire() map[string]any {
	return map[string]any{"network": "net", "version": 1, "role": "public", "agent": "a"}
}

func with(k string, v any) []byte {
	m := validWire()
	m[k] = v
	return wire(m)
}

func TestDecodeHelloRejects(t *testing.T) {
	many := make([]string, protocol.MaxAddrs+1)
	for i := range many {
		many[i] = fmt.Sprintf("/ip4/10.0.0.1/tcp/%d", 1000+i)
	}
	cases := map[string][]byte{
		"empty":            nil,
		"not json":         []byte("{not json"),
		"json array":       []byte(`["network"]`),
		"truncated":        wire(validWire())[:10],
		"wrong type":       with("version", "one"),
		"unknown role":     with("role", "admin"),
		"empty role":       with("role", ""),
		"no network":       with("network", ""),
		"long network":     with("network", strings.Repeat("n", 65)),
		"long agent":       with("agent", strings.Repeat("a", 129)),
		"too many direct":  with("direct", many),
		"too many relayed": with("relayed", many),
		"bad multiaddr":    with("direct", []string{"/ip4/127.0.0.1/tcp/notaport"}),
		"not a multiaddr":  with("relayed", []string{"hello"}),
		"oversize": func() []byte {
			// Valid JSON, valid fields: only the size is wrong.
			m := validWire()
			m["pad"] = strings.Repeat("x", protocol.MaxHelloSize)
			return wire(m)
		}(),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := protocol.DecodeHello(b)
			if !errors.Is(err, protocol.ErrMalformed) {
				t.Fatalf("DecodeHello = %v, want ErrMalformed", err)
			}
		})
	}
	// Exactly MaxAddrs is fine.
	if _, err := protocol.DecodeHello(with("direct", many[:protocol.MaxAddrs])); err != nil {
		t.Errorf("%d addresses: %v", protocol.MaxAddrs, err)
	}
}

// A responder that receives a malformed hello fails with ErrMalformed and
// does not answer with its own hello.
func TestRespondMalformed(t *testing.T) {
	for name, frame := range map[string][]byte{
		"bad json":   frameBytes(typeHello, []byte("{{{")),
		"wrong type": frameBytes(typeAccept, nil),
	} {
		t.Run(name, func(t *testing.T) {
			a, b := tcpPair(t)
			if _, err := a.Write(frame); err != nil {
				t.Fatal(err)
			}
			_, err := protocol.Respond(b, hello("n", protocol.Version, protocol.RolePublic))
			if !errors.Is(err, protocol.ErrMalformed) {
				t.Fatalf("Respond = %v, want ErrMalformed", err)
			}
			b.Close()
			_ = a.SetReadDeadline(time.Now().Add(5 * time.Second))
			rest, _ := io.ReadAll(a)
			if len(rest) != 0 {
				t.Errorf("responder sent %d bytes after a malformed hello", len(rest))
			}
		})
	}
}

func frameBytes(typ byte, payload []byte) []byte {
	var buf bytes.Buffer
	if err := protocol.WriteFrame(&buf, typ, payload); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	for i, p := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte{7}, 1000)} {
		if err := protocol.WriteFrame(&buf, byte(i), p); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte{7}, 1000)} {
		typ, got, err := protocol.ReadFrame(&buf, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if typ != byte(i) || !bytes.Equal(got, want) {
			t.Errorf("frame %d = %#x %q", i, typ, got)
		}
	}
	if _, _, err := protocol.ReadFrame(&buf, 1000); err != io.EOF {
		t.Errorf("read past the end = %v, want io.EOF", err)
	}
}

// countingReader serves a header and then endless zeros, counting what was read.
type countingReader struct {
	hdr  []byte
	read int
}

func (r *countingReader) Read(p []byte) (int, error) {
	n := 0
	if r.read < len(r.hdr) {
		n = copy(p, r.hdr[r.read:])
	} else {
		clear(p)
		n = len(p)
	}
	r.read += n
	return n, nil
}

func TestReadFrameTooLarge(t *testing.T) {
	hdr := make([]byte, 5)
	hdr[0] = typeHello
	binary.BigEndian.PutUint32(hdr[1:], 1<<30) // 1 GiB
	r := &countingReader{hdr: hdr}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, payload, err := protocol.ReadFrame(r, protocol.MaxHelloSize)
	runtime.ReadMemStats(&after)

	if !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("ReadFrame = %v, want ErrFrameTooLarge", err)
	}
	if payload != nil {
		t.Errorf("payload of %d bytes returned with the error", len(payload))
	}
	if r.read != len(hdr) {
		t.Errorf("ReadFrame read %d bytes, want only the %d-byte header", r.read, len(hdr))
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Errorf("ReadFrame allocated %d bytes for a refused frame", d)
	}

	// One byte over the cap is refused; exactly the cap is read.
	binary.BigEndian.PutUint32(hdr[1:], 101)
	if _, _, err := protocol.ReadFrame(&countingReader{hdr: hdr}, 100); !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Errorf("cap+1: %v", err)
	}
	binary.BigEndian.PutUint32(hdr[1:], 100)
	if _, p, err := protocol.ReadFrame(&countingReader{hdr: hdr}, 100); err != nil || len(p) != 100 {
		t.Errorf("cap: %d bytes, %v", len(p), err)
	}
}

func TestReadFrameTruncated(t *testing.T) {
	b := frameBytes(typeHello, []byte("hello"))
	for n := 1; n < len(b); n++ {
		_, _, err := protocol.ReadFrame(bytes.NewReader(b[:n]), 100)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%d of %d bytes: %v, want io.ErrUnexpectedEOF", n, len(b), err)
		}
	}
}

// rejected returns err as a RejectedError refused by the peer or by us, as
// byPeer says, with its Refusal.
func rejected(t *testing.T, side string, err error, byPeer bool) *protocol.RejectedError {
	t.Helper()
	var rej *protocol.RejectedError
	if !errors.As(err, &rej) || rej.ByPeer != byPeer {
		t.Fatalf("%s err = %v, want a RejectedError with ByPeer %v", side, err, byPeer)
	}
	if rej.Refusal == nil {
		t.Fatalf("%s: RejectedError without Refusal", side)
	}
	return rej
}

// A relay on network "overlay" with a network key refuses the initiator;
// both sides get the refusal's code and the relay's values, and the refused
// side words it for itself.
func TestHandshakeRefusalCodes(t *testing.T) {
	key, other := []byte("network key"), []byte("another key")
	const iniID, respID = peer.ID("initiator"), peer.ID("relay")
	proved := func(h protocol.Hello, k []byte) protocol.Hello {
		h.Proof = protocol.NetworkProof(k, iniID, respID)
		return h
	}
	check := func(remote protocol.Hello) error {
		if err := protocol.Check(hello("overlay", protocol.Version, protocol.RolePublic), remote); err != nil {
			return err
		}
		return protocol.CheckProof(key, remote, iniID, respID)
	}
	cases := []struct {
		name     string
		ini      protocol.Hello
		code     protocol.RejectCode
		sentinel error
		explain  string
	}{
		{"network", proved(hello("elsewhere", protocol.Version, protocol.RolePrivate), key),
			protocol.CodeNetwork, protocol.ErrNetworkMismatch, `the relay is on network "overlay", this node is on "elsewhere"`},
		{"version", proved(hello("overlay", protocol.Version+1, protocol.RolePrivate), key),
			protocol.CodeVersion, protocol.ErrVersionMismatch,
			fmt.Sprintf("the relay accepts handshake versions %d to %d, this node speaks %d", protocol.MinVersion, protocol.Version, protocol.Version+1)},
		{"no key", hello("overlay", protocol.Version, protocol.RolePrivate),
			protocol.CodeNoKey, protocol.ErrNetworkKey, "the relay's network requires a network key, this node has none"},
		{"wrong key", proved(hello("overlay", protocol.Version, protocol.RolePrivate), other),
			protocol.CodeWrongKey, protocol.ErrNetworkKey, "this node holds another network key than the relay"},
	}
	for name, mk := range transports {
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				resp := proved(hello("overlay", protocol.Version, protocol.RolePublic), key)
				ir, rr := runWith(t, mk, c.ini, resp, check)
				ours := rejected(t, "Respond", rr.err, false)
				theirs := rejected(t, "Initiate", ir.err, true)
				for side, rej := range map[string]*protocol.RejectedError{"relay": ours, "initiator": theirs} {
					r := rej.Refusal
					if r.Code != c.code || r.Network != "overlay" || r.MinVersion != protocol.MinVersion || r.MaxVersion != protocol.Version {
						t.Errorf("%s: refusal %+v, want code %s on overlay, versions %d to %d",
							side, r, c.code, protocol.MinVersion, protocol.Version)
					}
					if r.Reason != ours.Reason || rej.Reason != ours.Reason {
						t.Errorf("%s: reason %q / %q, the relay's is %q", side, r.Reason, rej.Reason, ours.Reason)
					}
				}
				if !errors.Is(rr.err, c.sentinel) || !errors.Is(ir.err, c.sentinel) {
					t.Errorf("errors.Is(%v) = %v, errors.Is(%v) = %v, want both %v",
						rr.err, errors.Is(rr.err, c.sentinel), ir.err, errors.Is(ir.err, c.sentinel), c.sentinel)
				}
				if got := theirs.Refusal.Explain("the relay", c.ini); got != c.explain {
					t.Errorf("Explain = %q, want %q", got, c.explain)
				}
			})
		}
	}
}

// oldPeer poses as a version 1 build on one end of a pipe: it speaks and
// reads raw frames, knowing nothing of frame 0x04.
type oldPeer struct {
	t *testing.T
	c net.Conn
}

func (p oldPeer) hello(h protocol.Hello) {
	p.t.Helper()
	b, err := protocol.EncodeHello(h)
	if err != nil {
		p.t.Error(err)
		return
	}
	if err := protocol.WriteFrame(p.c, typeHello, b); err != nil {
		p.t.Error(err)
	}
}

// read reads a frame as version 1 did: a hello, or a reason of at most
// MaxReasonSize bytes.
func (p oldPeer) read(max uint32) (byte, []byte) {
	p.t.Helper()
	typ, payload, err := protocol.ReadFrame(p.c, max)
	if err != nil {
		p.t.Errorf("old peer: %v", err)
	}
	return typ, payload
}

// A version 1 peer refused by this build gets frame 0x03 with the text
// reason, which it reads.
func TestRefusalToOldPeerIsText(t *testing.T) {
	t.Run("responder refuses", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		done := make(chan error, 1)
		go func() {
			_, err := protocol.Respond(b, hello("overlay", protocol.Version, protocol.RolePublic))
			b.Close()
			done <- err
		}()
		old := oldPeer{t, a}
		old.hello(hello("elsewhere", 1, protocol.RolePrivate))
		typ, payload := old.read(protocol.MaxReasonSize)
		want := `network mismatch: peer is on "elsewhere", this node is on "overlay"`
		if typ != typeReject || string(payload) != want {
			t.Errorf("old peer read frame %#x %q, want %#x %q", typ, payload, typeReject, want)
		}
		rej := rejected(t, "Respond", <-done, false)
		if rej.Refusal.Code != protocol.CodeNetwork || rej.Reason != want {
			t.Errorf("responder's refusal %+v", rej.Refusal)
		}
	})
	t.Run("initiator refuses", func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		done := make(chan error, 1)
		key := []byte("k")
		go func() {
			_, err := protocol.InitiateWith(a, hello("overlay", protocol.Version, protocol.RolePrivate), func(remote protocol.Hello) error {
				return protocol.CheckProof(key, remote, "relay", "self")
			})
			a.Close()
			done <- err
		}()
		old := oldPeer{t, b}
		if typ, _ := old.read(protocol.MaxHelloSize); typ != typeHello {
			t.Fatalf("old peer read frame %#x, want hello", typ)
		}
		old.hello(hello("overlay", 1, protocol.RolePublic))
		typ, payload := old.read(protocol.MaxReasonSize)
		want := "network key mismatch: peer proved no network key, this network has one"
		if typ != typeReject || string(payload) != want {
			t.Errorf("old peer read frame %#x %q, want %#x %q", typ, payload, typeReject, want)
		}
		rej := rejected(t, "Initiate", <-done, false)
		if r := rej.Refusal; r.Code != protocol.CodeNoKey || r.Network != "overlay" || !errors.Is(rej, protocol.ErrNetworkKey) {
			t.Errorf("initiator's refusal %+v", r)
		}
	})
}

// This build refused by a version 1 peer gets its text as CodeOther.
func TestRefusalFromOldPeer(t *testing.T) {
	const reason = `network mismatch: peer is on "overlay", this node is on "elsewhere"`
	self := hello("overlay", protocol.Version, protocol.RolePrivate)
	check := func(t *testing.T, err error, who string) {
		t.Helper()
		rej := rejected(t, "handshake", err, true)
		if r := rej.Refusal; r.Code != protocol.CodeOther || r.Reason != reason || rej.Reason != reason {
			t.Errorf("refusal %+v, reason %q", r, rej.Reason)
		}
		if errors.Is(err, protocol.ErrNetworkMismatch) {
			t.Errorf("a text reason matched ErrNetworkMismatch: text carries no code")
		}
		if got, want := rej.Refusal.Explain(who, self), who+" said: "+reason; got != want {
			t.Errorf("Explain = %q, want %q", got, want)
		}
	}
	t.Run("instead of hello", func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			old := oldPeer{t, b}
			old.read(protocol.MaxHelloSize)
			_ = protocol.WriteFrame(b, typeReject, []byte(reason))
		}()
		_, err := protocol.Initiate(a, self)
		a.Close()
		<-done
		check(t, err, "the relay")
	})
	t.Run("instead of accept", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			old := oldPeer{t, a}
			old.hello(hello("overlay", 1, protocol.RolePublic))
			old.read(protocol.MaxHelloSize)
			_ = protocol.WriteFrame(a, typeReject, []byte(reason))
		}()
		_, err := protocol.Respond(b, self)
		b.Close()
		<-done
		check(t, err, "the peer")
	})
}

// An unreadable 0x04 frame is a malformed handshake, not a refusal.
func TestRefusalFrameMalformed(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		_, _, _ = protocol.ReadFrame(b, protocol.MaxHelloSize)
		_ = protocol.WriteFrame(b, typeRejectCode, []byte("{not json"))
	}()
	_, err := protocol.Initiate(a, hello("n", protocol.Version, protocol.RolePrivate))
	var rej *protocol.RejectedError
	if !errors.Is(err, protocol.ErrMalformed) || errors.As(err, &rej) {
		t.Fatalf("err = %v, want ErrMalformed and no RejectedError", err)
	}
}
