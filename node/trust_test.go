package node_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/messaging"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/node/trust"
	"github.com/overlay-net/overlay/node/trust/trusttest"
	"github.com/overlay-net/overlay/node/tunnel"
	"github.com/overlay-net/overlay/protocol"
)

// testCA signs successive revocation lists and policies for a test.
type testCA = trusttest.CA

func newTestCA(t testing.TB) *testCA { return trusttest.New(t) }

func withCAPub(pub ed25519.PublicKey) nt.Option { return func(c *node.Config) { c.CAPub = pub } }

// trustChain starts relays r1 and r2 and private peers: a on r1, bridge on
// both, c and d on r2, so that a document published at a crosses two
// relays and a peer to reach d. Every node trusts ca; none uses the DHT.
func trustChain(t *testing.T, ca *testCA, opts ...nt.Option) (all []*node.Node, r1, r2, a, bridge, c, d *node.Node) {
	t.Helper()
	o := append([]nt.Option{withCAPub(ca.Pub), nt.WithoutDHT()}, opts...)
	r1, r2 = nt.Relay(t, o...), nt.Relay(t, o...)
	on1, on2 := []ma.Multiaddr{nt.WSAddr(t, r1)}, []ma.Multiaddr{nt.WSAddr(t, r2)}
	a = nt.Peer(t, on1, o...)
	bridge = nt.Peer(t, append(append([]ma.Multiaddr{}, on1...), on2...), o...)
	c, d = nt.Peer(t, on2, o...), nt.Peer(t, on2, o...)
	nt.Eventually(t, 15*time.Second, "every peer reserved", func() bool {
		return nt.Reserved(a, 1) && nt.Reserved(bridge, 2) && nt.Reserved(c, 1) && nt.Reserved(d, 1)
	})
	return []*node.Node{r1, r2, a, bridge, c, d}, r1, r2, a, bridge, c, d
}

func revocationsVersion(n *node.Node) uint64 {
	v, _ := n.Trust().Versions()
	return v
}

// A list published at one peer reaches every node through two relays and
// a peer; every node closes the revoked peer's connections, its
// reservation is gone, and it reaches nobody afterwards.
func TestRevocationSpreadsAndCutsOff(t *testing.T) {
	ca := newTestCA(t)
	all, r1, r2, a, bridge, c, d := trustChain(t, ca)
	ctx := nt.Context(t, 30*time.Second)
	// c and d talk through r2 before the revocation.
	if _, err := c.Messages().Send(ctx, d.ID(), []byte("before")); err != nil {
		t.Fatalf("c to d before the revocation: %v", err)
	}

	start := time.Now()
	if changed, err := a.Trust().Offer(cert.KindRevocations, ca.Revoke(d.ID())); !changed || err != nil {
		t.Fatalf("publish: changed=%v err=%v", changed, err)
	}
	nt.Eventually(t, 10*time.Second, "every node holds the list", func() bool {
		for _, n := range all {
			if revocationsVersion(n) != 1 {
				return false
			}
		}
		return true
	})
	t.Logf("list reached %d nodes over 2 relays and a bridging peer in %s", len(all), time.Since(start))

	others := []*node.Node{r1, r2, a, bridge, c}
	nt.Eventually(t, 10*time.Second, "no node is connected to the revoked peer", func() bool {
		for _, n := range others {
			if n.Host().Network().Connectedness(d.ID()) == network.Connected {
				return false
			}
		}
		return true
	})
	t.Logf("every node cut the revoked peer off %s after publishing", time.Since(start))
	// The revoked peer learned why, from the list it was handed.
	if revocationsVersion(d) != 1 {
		t.Errorf("the revoked peer holds list version %d, want 1", revocationsVersion(d))
	}
	// It reaches nobody: not through its relay, not to a member.
	short := nt.Context(t, 5*time.Second)
	if _, err := d.Messages().Send(short, c.ID(), []byte("after")); err == nil {
		t.Fatal("the revoked peer sent a message")
	}
	if err := r2.Trust().Revoked(d.ID()); !errors.Is(err, cert.ErrRevoked) {
		t.Fatalf("relay's check of d: %v", err)
	}
	if st := r2.Trust().Status(); st.ClosedRevoked == 0 {
		t.Errorf("relay counted no revoked peer closed: %+v", st)
	}
	// Its keeper's retries are refused: it holds no reservation, and the
	// relay counts the refusals
	// (whichever comes first: its reservation refused, or its new
	// connection closed once admitted).
	nt.Eventually(t, 10*time.Second, "the relay refuses the revoked peer's retries", func() bool {
		st := r2.Trust().Status()
		return len(d.Reservations()) == 0 &&
			(r2.Status().Service.Refusals["revoked (reservation)"] > 0 || st.ClosedRevoked >= 2)
	})
	// Members are unaffected.
	if _, err := bridge.Messages().Send(ctx, c.ID(), []byte("still here")); err != nil {
		t.Fatalf("bridge to c after the revocation: %v", err)
	}
}

// An older list (rollback) and bogus lists are refused and counted; the
// held list and the members are unaffected.
func TestRollbackAndBogusListsRefused(t *testing.T) {
	ca := newTestCA(t)
	all, _, _, a, bridge, c, _ := trustChain(t, ca)
	gone, _ := peer.IDFromPrivateKey(nt.Key(t))
	v1 := ca.Revoke(gone)
	first := ca.Revoke(c.ID()) // version 2 revokes c
	if _, err := a.Trust().Offer(cert.KindRevocations, first); err != nil {
		t.Fatal(err)
	}
	nt.Eventually(t, 10*time.Second, "every node holds version 2", func() bool {
		for _, n := range all {
			if revocationsVersion(n) != 2 {
				return false
			}
		}
		return true
	})
	_ = bridge
	if _, err := a.Trust().Offer(cert.KindRevocations, v1); !errors.Is(err, trust.ErrRollback) {
		t.Fatalf("publish version 1 after 2: %v, want rollback", err)
	}
	forger := newTestCA(t)
	forger.Rev = ca.Rev
	if _, err := a.Trust().Offer(cert.KindRevocations, forger.Revoke(a.ID())); cert.ReasonOf(err) != cert.ReasonUnknownCA {
		t.Fatalf("publish another CA's list: %v", err)
	}
	counts := a.Trust().Counts()
	if counts[trust.Rollback] != 1 || counts[trust.UnknownCA] != 1 {
		t.Fatalf("counts %v, want one rollback and one unknown-ca", counts)
	}
	if revocationsVersion(a) != 2 {
		t.Fatalf("holding version %d, want 2", revocationsVersion(a))
	}
}

// A flood of bogus lists from one member over the exchange costs the
// receiver a bounded number of checks: the rest are dropped unchecked and
// counted, and the member's own standing is untouched.
func TestBogusListFloodIsRateLimited(t *testing.T) {
	ca := newTestCA(t)
	forger := newTestCA(t)
	o := []nt.Option{withCAPub(ca.Pub), nt.WithoutDHT()}
	r := nt.Relay(t, o...)
	victim := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r)}, o...)
	// The attacker holds the forger's key as its "CA": it accepts and
	// offers the forged lists.
	attacker := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r)}, withCAPub(forger.Pub), nt.WithoutDHT())
	nt.Eventually(t, 10*time.Second, "both reserved", func() bool { return nt.Reserved(victim, 1) && nt.Reserved(attacker, 1) })
	ctx := nt.Context(t, 30*time.Second)
	if _, err := attacker.Connect(ctx, victim.ID().String()); err != nil {
		t.Fatal(err)
	}
	const flood = 40
	for i := 0; i < flood; i++ {
		// Not the victim: the attacker's own node would cut it off.
		someone, _ := peer.IDFromPrivateKey(nt.Key(t))
		if _, err := attacker.Trust().Offer(cert.KindRevocations, forger.Revoke(someone)); err != nil {
			t.Fatal(err)
		}
		// Push it as the gossip would, one exchange per list.
		if err := attacker.TrustSync(ctx, victim.ID()); err != nil {
			t.Logf("sync %d: %v", i, err)
		}
	}
	counts := victim.Trust().Counts()
	checked := counts[trust.UnknownCA] + counts[trust.BadSignature] + counts[trust.Malformed]
	t.Logf("victim after %d bogus lists: %v", flood, counts)
	if checked == 0 || checked > int64(trust.DefaultBudget.Burst) {
		t.Fatalf("victim checked %d bogus lists, want 1..%d", checked, trust.DefaultBudget.Burst)
	}
	if counts[trust.RateLimited] == 0 {
		t.Fatalf("no list counted rate-limited: %v", counts)
	}
	if revocationsVersion(victim) != 0 {
		t.Fatal("the victim holds a forged list")
	}
	if _, err := victim.Messages().Send(ctx, r.ID(), []byte("fine")); err != nil && !errors.Is(err, messaging.ErrNotMember) {
		t.Logf("victim to relay: %v", err)
	}
}

// A policy denies a message and a tunnel: the refusal names the rule, on
// the sender's side (it holds the policy) and on the receiver's (a sender
// that holds none is refused by the receiver, naming the rule).
func TestPolicyRefusesMessageAndTunnel(t *testing.T) {
	ca := newTestCA(t)
	o := []nt.Option{withCAPub(ca.Pub), nt.WithoutDHT()}
	r := nt.Relay(t, o...)
	on := []ma.Multiaddr{nt.WSAddr(t, r)}
	a, b := nt.Peer(t, on, o...), nt.Peer(t, on, o...)
	plain := nt.Peer(t, on, nt.WithoutDHT()) // holds no policy
	nt.Eventually(t, 10*time.Second, "reserved", func() bool {
		return nt.Reserved(a, 1) && nt.Reserved(b, 1) && nt.Reserved(plain, 1)
	})
	if _, err := b.Tunnels().Expose(tunnel.Exposure{Name: "db", Target: "127.0.0.1:1"}, false); err != nil {
		t.Fatal(err)
	}
	pol := ca.Policy(cert.Allow,
		cert.Rule{Name: "b-is-quiet", Action: cert.Deny, From: []string{"peer:" + a.ID().String(), "peer:" + plain.ID().String()},
			To: []string{"peer:" + b.ID().String()}, Messages: true},
		cert.Rule{Name: "db-closed", Action: cert.Deny, From: []string{"*"}, To: []string{"peer:" + b.ID().String()},
			Services: []string{"db"}})
	if _, err := b.Trust().Offer(cert.KindPolicy, pol); err != nil {
		t.Fatal(err)
	}
	nt.Eventually(t, 10*time.Second, "a holds the policy", func() bool {
		_, v := a.Trust().Versions()
		return v == 1
	})
	ctx := nt.Context(t, 30*time.Second)

	_, err := a.Messages().Send(ctx, b.ID(), []byte("hi"))
	if !errors.Is(err, messaging.ErrDenied) || !strings.Contains(err.Error(), `"b-is-quiet"`) {
		t.Fatalf("a to b: %v, want denied naming b-is-quiet", err)
	}
	t.Logf("sender's side: %v", err)
	_, err = plain.Messages().Send(ctx, b.ID(), []byte("hi"))
	if !errors.Is(err, messaging.ErrDenied) || !strings.Contains(err.Error(), `"b-is-quiet"`) {
		t.Fatalf("plain to b: %v, want denied by b naming b-is-quiet", err)
	}
	t.Logf("receiver's side: %v", err)
	if _, err := b.Messages().Send(ctx, a.ID(), []byte("the other way")); err != nil {
		t.Fatalf("b to a: %v", err)
	}

	_, err = a.Tunnels().Dial(ctx, b.ID(), "db")
	if !errors.Is(err, tunnel.ErrNotAllowed) || !strings.Contains(err.Error(), `"db-closed"`) {
		t.Fatalf("a's tunnel to b/db: %v, want not allowed naming db-closed", err)
	}
	t.Logf("forwarder's side: %v", err)
	_, err = plain.Tunnels().Dial(ctx, b.ID(), "db")
	if !errors.Is(err, tunnel.ErrNotAllowed) || !strings.Contains(err.Error(), `"db-closed"`) {
		t.Fatalf("plain's tunnel to b/db: %v, want refused by b naming db-closed", err)
	}
	t.Logf("server's side: %v", err)
}

// A node keeps its list across a restart and enforces it at once.
func TestTrustPersistsAcrossRestart(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	key := nt.Key(t)
	o := []nt.Option{withCAPub(ca.Pub), nt.WithoutDHT(), nt.WithDataDir(dir), nt.WithKey(key)}
	r := nt.Relay(t, o...)
	revoked := nt.Key(t)
	id, _ := peer.IDFromPrivateKey(revoked)
	if _, err := r.Trust().Offer(cert.KindRevocations, ca.Revoke(id)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r2 := nt.Relay(t, o...)
	if v := revocationsVersion(r2); v != 1 {
		t.Fatalf("after restart: version %d, want 1", v)
	}
	p := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r2)}, withCAPub(ca.Pub), nt.WithoutDHT(), nt.WithKey(revoked))
	// Its connections are closed once admitted, or its reservation refused
	// if it asks first: which comes first depends on timing.
	nt.Eventually(t, 30*time.Second, "the restarted relay cuts the revoked peer off", func() bool {
		st := r2.Trust().Status()
		return st.ClosedRevoked > 0 || r2.Status().Service.Refusals["revoked (reservation)"] > 0
	})
	if nt.Reserved(p, 1) {
		t.Fatal("the revoked peer holds a reservation")
	}
}

// The relay applies the policy's relay rules: a peer denied reservations
// holds none, a circuit denied is not opened, each counted by name; the
// other members are served.
func TestRelayEnforcesPolicy(t *testing.T) {
	ca := newTestCA(t)
	o := []nt.Option{withCAPub(ca.Pub), nt.WithoutDHT()}
	r := nt.Relay(t, o...)
	on := []ma.Multiaddr{nt.WSAddr(t, r)}
	outKey, aKey := nt.Key(t), nt.Key(t)
	outID, _ := peer.IDFromPrivateKey(outKey)
	aID, _ := peer.IDFromPrivateKey(aKey)
	b := nt.Peer(t, on, o...)
	pol := ca.Policy(cert.Allow,
		cert.Rule{Name: "no-reserve", Action: cert.Deny, From: []string{"peer:" + outID.String()}, To: []string{"*"},
			Relay: []string{cert.RelayReserve}},
		cert.Rule{Name: "a-not-to-b", Action: cert.Deny, From: []string{"peer:" + aID.String()},
			To: []string{"peer:" + b.ID().String()}, Relay: []string{cert.RelayCircuit}})
	if _, err := r.Trust().Offer(cert.KindPolicy, pol); err != nil {
		t.Fatal(err)
	}
	out := nt.Peer(t, on, append(o, nt.WithKey(outKey))...)
	a := nt.Peer(t, on, append(o, nt.WithKey(aKey))...)
	nt.Eventually(t, 10*time.Second, "a and b reserved, out refused", func() bool {
		return nt.Reserved(a, 1) && nt.Reserved(b, 1) && r.Status().Service.Refusals["policy (reservation)"] > 0
	})
	if nt.Reserved(out, 1) {
		t.Fatal("the peer the policy denies reservations holds one")
	}
	ctx := nt.Context(t, 10*time.Second)
	if _, err := a.Connect(ctx, b.ID().String()); err == nil {
		t.Fatal("a reached b through the relay though the policy denies the circuit")
	}
	if n := r.Status().Service.Refusals["policy (circuit)"]; n == 0 {
		t.Fatalf("relay counted no policy circuit refusal: %v", r.Status().Service.Refusals)
	}
	if _, err := b.Connect(ctx, a.ID().String()); err != nil {
		t.Fatalf("b to a, which no rule denies: %v", err)
	}
}

// A member that writes garbage on the trust protocol gets its stream reset;
// the node goes on exchanging with it and with others.
func TestTrustGarbageResetsOneStream(t *testing.T) {
	ca := newTestCA(t)
	o := []nt.Option{withCAPub(ca.Pub), nt.WithoutDHT()}
	r := nt.Relay(t, o...)
	p := nt.Peer(t, []ma.Multiaddr{nt.WSAddr(t, r)}, o...)
	nt.Eventually(t, 10*time.Second, "reserved", func() bool { return nt.Reserved(p, 1) })
	ctx := nt.Context(t, 20*time.Second)
	for _, garbage := range [][]byte{
		{0x01, 0, 0, 0, 16},                       // versions cut short
		{0x02, 0xff, 0xff, 0xff, 0xff},            // a document frame where versions belong, 4 GiB
		append([]byte{0x01, 0, 0, 0, 3}, 1, 2, 3), // versions of the wrong size
	} {
		s, err := p.Host().NewStream(ctx, r.ID(), trust.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = s.Write(garbage)
		_ = s.CloseWrite()
		_ = s.SetReadDeadline(time.Now().Add(15 * time.Second))
		if _, err := s.Read(make([]byte, 64)); err == nil {
			t.Fatalf("garbage %x: the relay answered", garbage)
		}
		s.Reset()
	}
	if _, err := r.Trust().Offer(cert.KindRevocations, ca.Revoke(newTestPeerID(t))); err != nil {
		t.Fatal(err)
	}
	nt.Eventually(t, 10*time.Second, "the peer still takes the relay's list", func() bool { return revocationsVersion(p) == 1 })
	if p.Host().Network().Connectedness(r.ID()) != network.Connected {
		t.Fatal("the garbage cost the peer its connection")
	}
}

func newTestPeerID(t testing.TB) peer.ID {
	id, err := peer.IDFromPrivateKey(nt.Key(t))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A member that sends a tampered policy over the trust protocol (a rule
// renamed after signing) has it refused as bad-signature and counted; the
// policy held and the members' traffic are unaffected.
func TestTamperedPolicyOverTheWire(t *testing.T) {
	ca := newTestCA(t)
	o := []nt.Option{withCAPub(ca.Pub), nt.WithoutDHT()}
	r := nt.Relay(t, o...)
	on := []ma.Multiaddr{nt.WSAddr(t, r)}
	a, b := nt.Peer(t, on, o...), nt.Peer(t, on, o...)
	nt.Eventually(t, 10*time.Second, "reserved", func() bool { return nt.Reserved(a, 1) && nt.Reserved(b, 1) })
	allowAll := cert.Rule{Name: "quiet-none", Action: cert.Allow, From: []string{"*"}, To: []string{"*"}, Messages: true}
	if _, err := r.Trust().Offer(cert.KindPolicy, ca.Policy(cert.Allow, allowAll)); err != nil {
		t.Fatal(err)
	}
	nt.Eventually(t, 10*time.Second, "a holds the policy", func() bool { _, v := a.Trust().Versions(); return v == 1 })

	deny := cert.Rule{Name: "quiet-none", Action: cert.Deny, From: []string{"*"}, To: []string{"*"}, Messages: true}
	doc := ca.Policy(cert.Allow, deny) // version 2, signed; then a rule renamed
	tampered := []byte(strings.Replace(string(doc), `"quiet-none"`, `"quiet-nonE"`, 1))
	if string(tampered) == string(doc) {
		t.Fatal("nothing tampered")
	}
	ctx := nt.Context(t, 20*time.Second)
	before := r.Trust().Counts()[trust.BadSignature]
	s, err := a.Host().NewStream(ctx, r.ID(), trust.ID)
	if err != nil {
		t.Fatal(err)
	}
	var v [16]byte
	v[15] = 2 // policy version 2, more than the relay holds
	if err := protocol.WriteFrame(s, 0x01, v[:]); err != nil {
		t.Fatal(err)
	}
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	for { // the relay's versions and documents, up to its end frame
		typ, _, err := protocol.ReadFrame(s, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if typ == 0x03 {
			break
		}
	}
	if err := protocol.WriteFrame(s, 0x02, []byte{cert.KindPolicy}, tampered); err != nil {
		t.Fatal(err)
	}
	_ = protocol.WriteFrame(s, 0x03)
	_ = s.CloseWrite()
	_, _ = s.Read(make([]byte, 1))
	s.Close()
	nt.Eventually(t, 10*time.Second, "the relay counted the tampered policy", func() bool {
		return r.Trust().Counts()[trust.BadSignature] == before+1
	})
	if _, v := r.Trust().Versions(); v != 1 {
		t.Fatalf("the relay holds policy version %d, want 1", v)
	}
	if _, err := a.Messages().Send(ctx, b.ID(), []byte("still allowed")); err != nil {
		t.Fatalf("a to b after the tampered policy: %v", err)
	}
}
