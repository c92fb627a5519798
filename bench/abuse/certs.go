package main

// The certificate-mode round: one relay and its members in certificate
// mode (a CA this harness makes with package cert), and attacks on it one
// after another, each for a short window: certificates the relay must
// refuse in the handshake, and documents it must refuse over
// /overlay/trust. Each attack's row says whether every attempt was
// refused, which relay counters counted it, and the members' round trips
// and losses during it. The round shares one relay, unlike the suite's
// other attacks: its attacks are small and the relay's counters tell them
// apart.

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/bench/capacity/relayproc"
	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/certs"
	"github.com/overlay-net/overlay/node/identity"
	"github.com/overlay-net/overlay/protocol"
)

// certRoundName selects the round with -only.
const certRoundName = "certs"

// certValidity is how long the relay's and members' certificates last:
// past --cert-warn's default (168h), so that no expiry warning shows.
const certValidity = 30 * 24 * time.Hour

// certAttack is one attack of the round: run makes its attempts until the
// window ends and says how many were made and how many the relay refused.
type certAttack struct {
	name, what string
	count      int // attempts or identities at -scale 1
	run        func(e *certEnv, n int, until time.Time) (attempts, refused int, detail string)
}

var certSuite = []certAttack{
	{"cert-other-ca", "handshake with a certificate from another CA", 20, attackOtherCA},
	{"cert-stolen", "a member's certificate presented by another peer ID", 20, attackStolen},
	{"cert-expired", "handshake with an expired certificate", 20, attackExpired},
	{"cert-revoked", "handshake with a certificate the relay's list revokes", 20, attackRevoked},
	{"trust-tampered-policy", "a policy with a byte changed, over /overlay/trust", 6, attackTamperedPolicy},
	{"trust-rollback", "an older signed revocation list (rollback), over /overlay/trust", 6, attackRollback},
	{"trust-flood", "bogus revocation lists from many members at once, over /overlay/trust", 24, attackTrustFlood},
}

// CertRow is one attack of the certificate round.
type CertRow struct {
	Attack     string         `json:"attack"`
	What       string         `json:"what"`
	Count      int            `json:"count"`
	Attempts   int            `json:"attempts"`
	Refused    int            `json:"refused"` // attempts the attacker saw refused
	AllRefused bool           `json:"all_refused"`
	Counted    string         `json:"counted"` // relay counters that grew, "key +n"
	CountedN   int64          `json:"counted_n"`
	RTTDuring  relayproc.Pcts `json:"rtt_during_ms"`
	Lost       int            `json:"messages_lost"`
	Failed     int64          `json:"messages_failed"`
	HealthMS   float64        `json:"relay_health_ms_max"` // slowest /v1/health answer during the attack
	Detail     string         `json:"attacker_saw"`
	Goals      []string       `json:"goals_failed"`
}

// CertRound is the whole round.
type CertRound struct {
	RelayUp   bool           `json:"relay_up"`
	RTTBefore relayproc.Pcts `json:"rtt_before_ms"`
	Lost      int            `json:"messages_lost"`
	Sent      int64          `json:"messages_sent"`
	Rows      []*CertRow     `json:"attacks"`
	Error     string         `json:"harness_error,omitempty"`
	// The relay's log over the round: warnings, errors, the commonest.
	LogWarn  int               `json:"relay_log_warn"`
	LogError int               `json:"relay_log_error"`
	LogTop   []relayproc.Count `json:"relay_log_top,omitempty"`
}

// certEnv is what the attacks need: the relay, the CA and the documents.
type certEnv struct {
	relay    peer.AddrInfo // over TCP
	caPub    ed25519.PublicKey
	caKey    ed25519.PrivateKey
	otherKey ed25519.PrivateKey // another CA
	stolen   []byte             // a member's certificate
	revoked  []byte             // a certificate for revokedKey, revoked by the list the relay holds
	revKey   crypto.PrivKey
	revV1    []byte // the older revocation list, the relay holds v2
	revV2Ver uint64
}

// runCertRound runs the round; hold is each attack's window.
func runCertRound(f flags, dir string, hold time.Duration) (*CertRound, error) {
	res := &CertRound{}
	bin, err := absBin(f.bin)
	if err != nil {
		return res, err
	}
	rdir := filepath.Join(dir, certRoundName)
	if err := os.MkdirAll(filepath.Join(rdir, "relay"), 0o700); err != nil {
		return res, err
	}
	env := &certEnv{}
	if env.caPub, env.caKey, err = cert.NewCA(); err != nil {
		return res, err
	}
	if _, env.otherKey, err = cert.NewCA(); err != nil {
		return res, err
	}
	// The relay's identity first, for its certificate.
	rkey, err := identity.LoadOrCreate(filepath.Join(rdir, "relay", "identity.key"))
	if err != nil {
		return res, err
	}
	rid, _ := peer.IDFromPrivateKey(rkey)
	caFile, relayCert := filepath.Join(rdir, "ca.pub"), filepath.Join(rdir, "relay.cert")
	if err := os.WriteFile(caFile, cert.MarshalPublicKey(env.caPub), 0o644); err != nil {
		return res, err
	}
	if err := writeCert(relayCert, env.caKey, rid, "relay", time.Now().Add(-time.Minute), time.Now().Add(certValidity)); err != nil {
		return res, err
	}
	relay, err := relayproc.StartRelay(bin, rdir, relayproc.Options{TTL: 10 * time.Minute, MaxReservations: 1024,
		Listen: "/ip4/127.0.0.1/tcp/0/ws",
		Extra: []string{"--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1",
			"--ca-pub", caFile, "--cert", relayCert}})
	if err != nil {
		return res, err
	}
	defer relay.Stop()
	t, err := readTarget(rdir, relay)
	if err != nil {
		return res, err
	}
	ai, err := peer.AddrInfoFromString(t.TCPMA)
	if err != nil {
		return res, err
	}
	env.relay = *ai
	logf("%s: relay pid %d in certificate mode (log %s); starting %d members", certRoundName, relay.PID, relay.LogPath, f.members)

	// The revocation lists: v1 revokes a stranger, v2 also the revoked
	// attacker; the relay gets v2 through `overlay ca publish`.
	if env.revKey, _, err = crypto.GenerateEd25519Key(nil); err != nil {
		return res, err
	}
	revID, _ := peer.IDFromPrivateKey(env.revKey)
	revCert, err := signCert(env.caKey, revID, "revoked", time.Now().Add(-time.Minute), time.Now().Add(certValidity))
	if err != nil {
		return res, err
	}
	env.revoked = revCert.Marshal()
	_, strangerPub, _ := crypto.GenerateEd25519Key(nil)
	strangerID, _ := peer.IDFromPublicKey(strangerPub)
	v1 := (*cert.RevocationList)(nil).Revoke(cert.Serial{}, strangerID)
	if env.revV1, err = v1.Sign(env.caKey, time.Now().Add(-time.Minute)); err != nil {
		return res, err
	}
	v2 := v1.Revoke(revCert.Serial, "")
	v2raw, err := v2.Sign(env.caKey, time.Now())
	if err != nil {
		return res, err
	}
	env.revV2Ver = v2.Version
	v2file := filepath.Join(rdir, "revocations-v2.pem")
	if pemDoc, err := cert.EncodePEM(v2raw); err != nil {
		return res, err
	} else if err := os.WriteFile(v2file, pemDoc, 0o644); err != nil {
		return res, err
	}
	if out, err := relay.CLI("ca", "publish", v2file); err != nil {
		return res, fmt.Errorf("publish the revocation list: %w", err)
	} else {
		logf("%s: published revocation list v%d: %s", certRoundName, v2.Version, strings.TrimSpace(string(out)))
	}

	members, err := startCertMembers(ma.StringCast(t.WSMA), f.members, rdir, env)
	defer func() {
		for _, m := range members {
			m.Close()
		}
	}()
	if err != nil {
		return res, err
	}
	env.stolen = members[0].Certs().Own().Marshal()
	tr := startTraffic(members, f.interval)
	stopped := false
	defer func() {
		if !stopped {
			tr.stop()
		}
	}()
	if err := tr.waitAcked(30 * time.Second); err != nil {
		return res, err
	}
	tr.phase.Store(phaseBefore)
	time.Sleep(min(f.before, 5*time.Second))
	tr.phase.Store(phaseAfter) // between attacks: not counted

	for i, a := range certSuite {
		n := max(1, int(float64(a.count)*f.scale+0.5))
		row := &CertRow{Attack: a.name, What: a.what, Count: n}
		before, err := relayCounters(t.API)
		if err != nil {
			return res, fmt.Errorf("%s: relay counters: %w", a.name, err)
		}
		lostBefore, failedBefore := tr.lostSoFar(), tr.failed.Load()
		phase := phaseAfter + 1 + int32(i) // one phase per attack
		tr.phase.Store(phase)
		healthStop := make(chan struct{})
		healthDone := make(chan float64)
		go func() { healthDone <- watchHealth(t.API, healthStop) }()
		until := time.Now().Add(hold)
		row.Attempts, row.Refused, row.Detail = a.run(env, n, until)
		if d := time.Until(until); d > 0 {
			time.Sleep(d)
		}
		close(healthStop)
		row.HealthMS = <-healthDone
		tr.phase.Store(phaseAfter)
		after, err := relayCounters(t.API)
		if err != nil {
			return res, fmt.Errorf("%s: relay counters: %w", a.name, err)
		}
		row.Counted, row.CountedN = counterDelta(before, after)
		row.AllRefused = row.Attempts > 0 && row.Refused == row.Attempts
		row.RTTDuring = roundPcts(relayproc.Percentiles(tr.take(phase)))
		row.Lost, row.Failed = tr.lostSoFar()-lostBefore, tr.failed.Load()-failedBefore
		row.check()
		res.Rows = append(res.Rows, row)
		logf("%s: %d attempts, %d refused; counted %s; RTT p99 %.2f ms, lost %d; %s",
			a.name, row.Attempts, row.Refused, row.Counted, row.RTTDuring.P99, row.Lost, row.Detail)
	}
	res.RelayUp = relayUp(relay, t.API)
	res.LogWarn, res.LogError, res.LogTop = relay.LogSummary()
	res.Lost = tr.stop()
	stopped = true
	res.Sent = tr.sent.Load()
	res.RTTBefore = roundPcts(relayproc.Percentiles(tr.take(phaseBefore)))
	return res, nil
}

// check fills Goals with what the row misses: every attempt refused and
// counted by the relay, no message lost.
func (r *CertRow) check() {
	r.Goals = nil
	if !r.AllRefused {
		r.Goals = append(r.Goals, "all refused")
	}
	if r.CountedN < int64(min(r.Refused, 1)) {
		r.Goals = append(r.Goals, "counted")
	}
	if r.Lost > 0 {
		r.Goals = append(r.Goals, "0 lost")
	}
}

func signCert(key ed25519.PrivateKey, id peer.ID, name string, nb, na time.Time) (*cert.Certificate, error) {
	s, err := cert.NewSerial()
	if err != nil {
		return nil, err
	}
	c := &cert.Certificate{Serial: s, Peer: id, Name: name, Groups: []string{"bench"}, NotBefore: nb, NotAfter: na}
	if _, err := c.Sign(key); err != nil {
		return nil, err
	}
	return c, nil
}

func writeCert(file string, key ed25519.PrivateKey, id peer.ID, name string, nb, na time.Time) error {
	c, err := signCert(key, id, name, nb, na)
	if err != nil {
		return err
	}
	b, err := cert.EncodePEM(c.Marshal())
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// startCertMembers starts n members in certificate mode, each with its
// certificate file in dir.
func startCertMembers(relay ma.Multiaddr, n int, dir string, env *certEnv) ([]*node.Node, error) {
	n = max(2, n&^1)
	out := make([]*node.Node, 0, n)
	for i := range n {
		key, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			return out, err
		}
		id, _ := peer.IDFromPrivateKey(key)
		file := filepath.Join(dir, fmt.Sprintf("member%d.cert", i))
		if err := writeCert(file, env.caKey, id, fmt.Sprintf("member%d", i), time.Now().Add(-time.Minute), time.Now().Add(certValidity)); err != nil {
			return out, err
		}
		m, _, err := startMemberWith(relay, false, 30*time.Second, key, func(cfg *node.Config) {
			cfg.Certs = certs.Config{CA: env.caPub, CertFile: file}
			cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		})
		if err != nil {
			return out, fmt.Errorf("member %d: %w", i, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// relayCounters reads the relay's certificate refusals (GET /v1/status)
// and trust offers refused (GET /v1/trust), keyed "certificate: KEY" and
// "trust: OUTCOME".
func relayCounters(api string) (map[string]int64, error) {
	var st struct {
		Certificate *struct {
			Refusals map[string]int64 `json:"refusals"`
		} `json:"certificate"`
	}
	var tr struct {
		Offers map[string]int64 `json:"offers"`
	}
	if err := getJSON(api, "/v1/status", &st); err != nil {
		return nil, err
	}
	if err := getJSON(api, "/v1/trust", &tr); err != nil {
		return nil, err
	}
	out := map[string]int64{}
	if st.Certificate != nil {
		for k, v := range st.Certificate.Refusals {
			out["certificate: "+k] = v
		}
	}
	for k, v := range tr.Offers {
		if k != "accepted" && k != "stale" {
			out["trust: "+k] = v
		}
	}
	return out, nil
}

func getJSON(api, path string, v any) error {
	c := http.Client{Timeout: 15 * time.Second}
	resp, err := c.Get("http://" + api + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// counterDelta names the counters that grew from before to after, and
// their total growth.
func counterDelta(before, after map[string]int64) (string, int64) {
	var parts []string
	var sum int64
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s +%d", k, d))
			sum += d
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none", 0
	}
	return strings.Join(parts, ", "), sum
}

// watchHealth asks the relay's /v1/health every 200 ms until stop and
// returns the slowest answer, ms (-1 when one did not come within 5 s).
func watchHealth(api string, stop <-chan struct{}) float64 {
	c := http.Client{Timeout: 5 * time.Second}
	worst := 0.0
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		t0 := time.Now()
		resp, err := c.Get("http://" + api + "/v1/health")
		if err != nil {
			worst = -1
		} else {
			resp.Body.Close()
			if ms := float64(time.Since(t0).Microseconds()) / 1000; worst >= 0 && ms > worst {
				worst = ms
			}
		}
		select {
		case <-stop:
			return round(worst, 1)
		case <-tick.C:
		}
	}
}

// hello is a certificate-mode hello of a private node.
func hello(crt []byte) protocol.Hello {
	return protocol.Hello{Network: networkName, Version: protocol.Version, Role: protocol.RolePrivate, Agent: "abuse", Cert: crt}
}
