package main

// One attack's run: a fresh relay, members messaging through it, the
// attack in force, a new member joining, and the verdict.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/bench/capacity/relayproc"
	"github.com/overlay-net/overlay/node"
)

// Result is the whole suite.
type Result struct {
	Started     string  `json:"started"`
	Scale       float64 `json:"scale"`
	RSSBoundMiB int     `json:"rss_bound_mib"`
	HoldS       float64 `json:"hold_s"`
	Members     int     `json:"members"`
	Rows        []*Row  `json:"attacks"`
	// Certs is the certificate-mode round (certs.go), nil when not run.
	Certs *CertRound `json:"certificate_round,omitempty"`
}

// Row is one attack's outcome.
type Row struct {
	Attack string `json:"attack"`
	What   string `json:"what"`
	Count  int    `json:"count"`

	RelayUp      bool           `json:"relay_up"`
	RelayExit    string         `json:"relay_exit,omitempty"`
	RSSBeforeMiB float64        `json:"rss_before_mib"`
	RSSPeakMiB   float64        `json:"rss_peak_mib"`
	RTTBefore    relayproc.Pcts `json:"rtt_before_ms"`
	RTTDuring    relayproc.Pcts `json:"rtt_during_ms"`
	// JoinS is how long the new members took to hold a reservation during
	// the attack, the slower of the one over TCP and the one over
	// WebSocket; -1 when one did not within the timeout.
	JoinS       float64           `json:"join_s"`
	JoinTCPS    float64           `json:"join_tcp_s"`
	JoinWSS     float64           `json:"join_ws_s"`
	JoinError   string            `json:"join_error,omitempty"`
	Lost        int               `json:"messages_lost"`
	Sent        int64             `json:"messages_sent"`
	SendFailed  int64             `json:"messages_failed"`
	SendErrors  []relayproc.Count `json:"send_errors,omitempty"`
	Refused     int64             `json:"strangers_refused"`
	PeersDuring int               `json:"relay_peers_connected_during"`
	RampS       float64           `json:"ramp_s"`
	DuringS     float64           `json:"during_s"`
	APIAccepted int64             `json:"api_foreign_accepted"`
	Detail      string            `json:"attacker_saw"`
	LogWarn     int               `json:"relay_log_warn"`
	LogError    int               `json:"relay_log_error"`
	LogTop      []relayproc.Count `json:"relay_log_top,omitempty"`

	Failed       []string `json:"goals_failed"`
	HarnessError string   `json:"harness_error,omitempty"`
}

// check fills Failed with the goals this row misses.
func (r *Row) check(f flags) {
	r.Failed = nil
	fail := func(ok bool, goal string) {
		if !ok {
			r.Failed = append(r.Failed, goal)
		}
	}
	if r.HarnessError != "" {
		fail(false, "harness")
		return
	}
	fail(r.RelayUp, "relay up")
	fail(r.RSSPeakMiB < float64(f.rssBoundMiB), fmt.Sprintf("RSS < %d MiB", f.rssBoundMiB))
	fail(r.RTTDuring.N > 0 && r.RTTDuring.P99 <= 3*r.RTTBefore.P99, "RTT p99 <= 3x")
	fail(r.JoinS >= 0 && r.JoinS <= 2, "join <= 2 s")
	fail(r.Lost == 0, "0 lost")
	if r.Attack == "control-api" {
		fail(r.APIAccepted == 0, "foreign API requests refused")
	}
}

func runAttack(f flags, dir string, a attack) (*Row, error) {
	n := max(1, int(float64(a.count)*f.scale+0.5))
	row := &Row{Attack: a.name, What: a.what, Count: n, JoinS: -1, JoinTCPS: -1, JoinWSS: -1}
	bin, err := absBin(f.bin)
	if err != nil {
		return row, err
	}
	adir := filepath.Join(dir, a.name)
	if err := os.MkdirAll(adir, 0o755); err != nil {
		return row, err
	}
	relay, err := relayproc.StartRelay(bin, adir, relayproc.Options{TTL: 10 * time.Minute, MaxReservations: 1024,
		Listen: "/ip4/127.0.0.1/tcp/0/ws",
		Extra:  []string{"--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1"}})
	if err != nil {
		return row, err
	}
	defer relay.Stop()
	t, err := readTarget(adir, relay)
	if err != nil {
		return row, err
	}
	wsMA, tcpMA := ma.StringCast(t.WSMA), ma.StringCast(t.TCPMA)
	var joinMu sync.Mutex
	logf("%s: relay pid %d (log %s); starting %d members", a.name, relay.PID, relay.LogPath, f.members)

	members, err := startMembers(wsMA, f.members)
	defer func() {
		for _, m := range members {
			m.Close()
		}
	}()
	if err != nil {
		return row, err
	}
	t.Member = members[0].ID().String()
	tr := startTraffic(members, f.interval)
	stopped := false
	defer func() {
		if !stopped {
			tr.stop()
		}
	}()
	if err := tr.waitAcked(30 * time.Second); err != nil {
		return row, err
	}
	tr.phase.Store(phaseBefore)
	time.Sleep(f.before)
	// A relay whose control API wants more than a loopback GET (a token,
	// say) leaves the refusals unknown (-1), not the suite broken.
	refBefore, _, statusErr := relayStatus(t.API)
	if statusErr != nil {
		logf("%s: relay status before the attack: %v", a.name, statusErr)
	}
	if m, err := relayproc.ReadMem(relay.PID); err == nil {
		row.RSSBeforeMiB = mib(m.RSS)
	}

	logf("%s: starting the attack (%d)", a.name, n)
	t0 := time.Now()
	at, err := startAttacker(adir, a, n, t, f.ramp, f.ramp+f.hold+f.joinTimeout+time.Minute)
	if err != nil {
		return row, err
	}
	defer at.kill()
	row.RampS = round(time.Since(t0).Seconds(), 1)
	tr.phase.Store(phaseDuring)
	logf("%s: in force after %.1f s; a new member joins", a.name, row.RampS)
	td := time.Now()
	// A new member over each transport: a backlog on one listener locks out
	// only the members that come through it.
	var joins sync.WaitGroup
	for _, overWS := range []bool{false, true} {
		joins.Add(1)
		go func() {
			defer joins.Done()
			addr := tcpMA
			if overWS {
				addr = wsMA
			}
			m, d, err := startMember(addr, !overWS, f.joinTimeout)
			secs, why := -1.0, ""
			if err != nil {
				why = strings.Join(strings.Fields(err.Error()), " ")
			} else {
				secs = round(d.Seconds(), 2)
				m.Close()
			}
			joinMu.Lock()
			defer joinMu.Unlock()
			if overWS {
				row.JoinWSS = secs
			} else {
				row.JoinTCPS = secs
			}
			if why != "" {
				row.JoinError = strings.TrimPrefix(row.JoinError+"; ", "; ") + map[bool]string{true: "WS", false: "TCP"}[overWS] + ": " + why
			}
		}()
	}
	select {
	case <-time.After(f.hold):
	case <-relay.Exited():
	}
	joins.Wait() // bounded by -join-timeout
	row.JoinS = max(row.JoinTCPS, row.JoinWSS)
	if row.JoinTCPS < 0 || row.JoinWSS < 0 {
		row.JoinS = -1
	}
	row.DuringS = round(time.Since(td).Seconds(), 1)
	if m, err := relayproc.ReadMem(relay.PID); err == nil {
		row.RSSPeakMiB = mib(m.HWM)
	}
	if refAfter, peers, err := relayStatus(t.API); err == nil && statusErr == nil {
		row.Refused, row.PeersDuring = refAfter-refBefore, peers
	} else {
		row.Refused, row.PeersDuring = -1, -1 // the control API did not answer
	}
	saw, err := at.stop(time.Minute)
	if err != nil {
		return row, err
	}
	row.Detail, row.APIAccepted = saw.Detail, saw.APIAccepted
	tr.phase.Store(phaseAfter)
	row.RelayUp = relayUp(relay, t.API)
	row.Lost = tr.stop()
	stopped = true
	row.Sent, row.SendFailed = tr.sent.Load(), tr.failed.Load()
	row.SendErrors = relayproc.Top(tr.errors(), 3)
	row.RTTBefore = roundPcts(relayproc.Percentiles(tr.take(phaseBefore)))
	row.RTTDuring = roundPcts(relayproc.Percentiles(tr.take(phaseDuring)))
	select {
	case <-relay.Exited():
		row.RelayExit = fmt.Sprintf("%v: %s", relay.ExitError(), relay.LogTail(5))
	default:
	}
	row.LogWarn, row.LogError, row.LogTop = relay.LogSummary()
	logf("%s: relay up %v, RSS peak %.0f MiB, RTT p99 %.2f -> %.2f ms, join %.2f s, lost %d, refused %d; %s",
		a.name, row.RelayUp, row.RSSPeakMiB, row.RTTBefore.P99, row.RTTDuring.P99, row.JoinS, row.Lost, row.Refused, row.Detail)
	return row, nil
}

func startMembers(relay ma.Multiaddr, n int) ([]*node.Node, error) {
	n = max(2, n&^1)
	ms := make([]*node.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms[i], _, errs[i] = startMember(relay, false, 30*time.Second)
		}()
	}
	wg.Wait()
	var out []*node.Node
	for _, m := range ms {
		if m != nil {
			out = append(out, m)
		}
	}
	return out, errors.Join(errs...)
}

// readTarget reads the relay's listen addresses from its address file.
func readTarget(dir string, r *relayproc.Relay) (target, error) {
	t := target{API: r.API, WSMA: r.WSAddr, WS: hostPort(r.WSAddr)}
	b, err := os.ReadFile(filepath.Join(dir, "relay.addrs"))
	if err != nil {
		return t, err
	}
	for _, l := range strings.Fields(string(b)) {
		switch {
		case strings.Contains(l, "/quic-v1/"):
			t.QUIC = hostPort(l)
		case strings.Contains(l, "/tcp/") && !strings.Contains(l, "/ws/"):
			t.TCPMA, t.TCP = l, hostPort(l)
		}
	}
	if t.TCP == "" || t.QUIC == "" || t.WS == "" {
		return t, fmt.Errorf("relay addresses lack TCP, WS or QUIC: %s", b)
	}
	return t, nil
}

// relayStatus reads the relay's status: the sum of every "refusals"
// counter map in it, so that counters a later relay adds (connection-level
// refusals, say) count without changing this harness, and its
// peers_connected.
func relayStatus(api string) (refused int64, peers int, err error) {
	c := http.Client{Timeout: 15 * time.Second}
	resp, err := c.Get("http://" + api + "/v1/status")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET /v1/status: %s", resp.Status)
	}
	var v any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return 0, 0, fmt.Errorf("decode status: %w", err)
	}
	return sumRefusals(v), peersConnected(v), nil
}

func peersConnected(status any) int {
	if m, ok := status.(map[string]any); ok {
		if n, ok := m["peers_connected"].(float64); ok {
			return int(n)
		}
	}
	return 0
}

func sumRefusals(status any) int64 {
	var sum int64
	var walk func(v any, counting bool)
	walk = func(v any, counting bool) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(e, counting || k == "refusals")
			}
		case []any:
			for _, e := range x {
				walk(e, counting)
			}
		case float64:
			if counting {
				sum += int64(x)
			}
		}
	}
	walk(status, false)
	return sum
}

// relayUp says whether the relay process lives and its control API
// answers HTTP within 10 s; any answer counts, so that a control API that
// wants a token still shows a relay that is up.
func relayUp(r *relayproc.Relay, api string) bool {
	select {
	case <-r.Exited():
		return false
	default:
	}
	c := http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.Get("http://" + api + "/v1/health")
		if err == nil {
			resp.Body.Close()
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

func shortErr(err error) string { return relayproc.Normalize(err.Error()) }

func mib(kib int64) float64 { return round(float64(kib)/1024, 1) }

func round(v float64, d int) float64 {
	p := 1.0
	for range d {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

func roundPcts(p relayproc.Pcts) relayproc.Pcts {
	p.P50, p.P90, p.P99, p.Max = round(p.P50, 2), round(p.P90, 2), round(p.P99, 2), round(p.Max, 2)
	return p
}
