package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// peerState is one private peer of a trial.
type peerState struct {
	s    site
	p    *proc
	data string
	api  string
	id   string
}

// trial is one run of a scenario in a freshly built lab.
type trial struct {
	o          options
	sc         scenario
	dir        string
	l          *lab
	relay      *proc
	relayArgs  []string
	relayAddrs []string // the relay's full addresses, as it wrote them
	a, b       *peerState
	pathFailed bool // a path query failed (printed once)
}

// pathChange is a change of B's path in A's peer book, seen by a poll.
type pathChange struct {
	At   time.Duration // since the soak started
	Path string
}

// trialResult is what one trial measured.
type trialResult struct {
	sent, acked, lost int
	rttP50, rttMax    time.Duration // of the acknowledged messages
	inbox             delivery
	direct            bool
	directAfter       time.Duration // since the soak started
	pathBefore        string        // before the first message
	endPath           string
	endPathBA         string // A's path in B's book at the end: the two can differ
	timeline          []pathChange
	faultAt           time.Duration // since the soak started; 0: no fault
	directVia         string        // transports of router A's live flows to router B: "tcp", "udp", "tcp+udp", ""
	punches           *punchStats   // both peers' hole-punch counts; nil if not reported
	observed          []string      // the public addresses A and B were observed at
	punchLines        int           // peer log lines about hole punching
	warnLines         int           // peer log lines at WARN or ERROR
	firstErrors       []string
}

type statusJSON struct {
	PeerID       string `json:"peer_id"`
	Reservations []struct {
		Relay string `json:"relay"`
	} `json:"reservations"`
	Reachability struct {
		State    string   `json:"state"`
		Observed []string `json:"observed"`
	} `json:"reachability"`
	HolePunch *punchStats `json:"hole_punch"` // nil from a binary without hole punching
}

// punchStats counts DCUtR attempts as a node's status reports them.
type punchStats struct {
	Attempts  int `json:"attempts"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	// PrePunches: low-TTL packets sent before punches (0 from a binary
	// without them).
	PrePunches int `json:"pre_punches"`
	// Spray: port spraying against a symmetric NAT (0 from a binary
	// without it).
	Spray sprayStats `json:"spray"`
}

type sprayStats struct {
	Attempts int `json:"attempts"`
	Refused  int `json:"refused"`
	Direct   int `json:"direct"`
	Packets  int `json:"packets"`
	Probes   int `json:"probes"`
}

func (p *punchStats) add(q punchStats) {
	p.Spray.Attempts += q.Spray.Attempts
	p.Spray.Refused += q.Spray.Refused
	p.Spray.Direct += q.Spray.Direct
	p.Spray.Packets += q.Spray.Packets
	p.Spray.Probes += q.Spray.Probes
	p.Attempts += q.Attempts
	p.Succeeded += q.Succeeded
	p.Failed += q.Failed
	p.PrePunches += q.PrePunches
}

type peerJSON struct {
	ID   string `json:"peer_id"`
	Path string `json:"path"`
}

type soakJSON struct {
	Sent   int           `json:"sent"`
	Acked  int           `json:"acknowledged"`
	Lost   int           `json:"lost"`
	P50    time.Duration `json:"rtt_p50_ns"`
	Max    time.Duration `json:"rtt_max_ns"`
	Errors []string      `json:"first_errors"`
}

// pollEvery is how often a trial reads B's path from A, fine enough to
// measure a time to direct of a second or two.
const pollEvery = 250 * time.Millisecond

// runTrial builds the lab for sc, runs relay and peers, sends from A to B
// while polling the path (injecting sc's fault), and tears everything down
// before returning.
func runTrial(ctx context.Context, o options, sc scenario, dir string) (res trialResult, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	t := &trial{o: o, sc: sc, dir: dir, l: &lab{verbose: o.verbose}}
	defer func() {
		if cerr := t.l.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
	}()
	if err := t.setup(ctx); err != nil {
		return res, err
	}
	duration := o.duration
	if sc.fault != nil {
		duration = o.faultDuration
	}
	res.pathBefore = t.path(ctx)

	// Soak from A to B. The per-message timeout is long enough to ride out
	// the faults: lost means never acknowledged, not acknowledged late.
	soakCtx, cancelSoak := context.WithCancel(ctx)
	defer cancelSoak()
	type soakOut struct {
		out []byte
		err error
	}
	soakDone := make(chan soakOut, 1)
	t0 := time.Now()
	go func() {
		out, err := t.l.nsExec(soakCtx, t.a.s.peer, o.bin, "send", "--json", "--api", t.a.api,
			"--soak", duration.String(), "--interval", o.interval.String(), "--timeout", o.msgTimeout.String(), t.b.id)
		soakDone <- soakOut{out, err}
	}()

	var inbox inboxLog
	readInbox := func() error {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		out, err := t.l.nsExec(qctx, t.b.s.peer, o.bin, "inbox", "--json", "--api", t.b.api)
		if err != nil {
			return err
		}
		return inbox.add(out)
	}
	// The inbox keeps the newest 1000 messages: read it often enough that
	// none falls out between reads.
	inboxEvery := min(30*time.Second, 500*o.interval)
	lastInbox := time.Now()

	faultDone := make(chan error, 1)
	faultStarted, faultWaited := false, false
	defer func() {
		// The fault may be touching the lab (a relay being restarted):
		// let it finish before the deferred close tears the lab down.
		if faultStarted && !faultWaited {
			<-faultDone
		}
	}()
	observe := func(p string) {
		at := time.Since(t0)
		if n := len(res.timeline); n == 0 || res.timeline[n-1].Path != p {
			res.timeline = append(res.timeline, pathChange{at, p})
		}
		if p == "direct" && !res.direct {
			res.direct, res.directAfter = true, at
		}
	}
	// One poll: B's path, the fault when it is due, B's inbox when due.
	poll := func() error {
		observe(t.path(ctx))
		if sc.fault != nil && !faultStarted && (res.direct || time.Since(t0) >= o.faultAfter) {
			faultStarted, res.faultAt = true, time.Since(t0)
			fmt.Fprintf(os.Stderr, "natlab: %s: %s at %s (path %s)\n", sc.name, sc.fault.what,
				res.faultAt.Round(10*time.Millisecond), res.timeline[len(res.timeline)-1].Path)
			go func() { faultDone <- sc.fault.run(ctx, t) }()
		}
		if time.Since(lastInbox) >= inboxEvery {
			lastInbox = time.Now()
			if err := readInbox(); err != nil {
				return fmt.Errorf("read B's inbox: %w", err)
			}
		}
		return nil
	}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var so soakOut
	if err := poll(); err != nil { // at once, then every pollEvery
		return res, err
	}
loop:
	for {
		select {
		case so = <-soakDone:
			break loop
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
			if err := poll(); err != nil {
				return res, err
			}
		}
	}
	if faultStarted {
		faultWaited = true
		if err := <-faultDone; err != nil {
			return res, fmt.Errorf("fault %s: %w", sc.fault.name, err)
		}
	} else if sc.fault != nil {
		return res, fmt.Errorf("the soak ended before fault %s was due", sc.fault.name)
	}
	observe(t.path(ctx))
	res.endPath = res.timeline[len(res.timeline)-1].Path
	res.endPathBA = t.pathFrom(ctx, t.b, t.a)
	res.directVia = t.directVia(ctx)

	var sj soakJSON
	if err := decodeJSON("send --soak", so.out, &sj); err != nil {
		if so.err != nil {
			return res, so.err
		}
		return res, err
	}
	res.sent, res.acked, res.lost, res.firstErrors = sj.Sent, sj.Acked, sj.Lost, sj.Errors
	res.rttP50, res.rttMax = sj.P50, sj.Max
	if err := readInbox(); err != nil {
		return res, fmt.Errorf("read B's inbox: %w", err)
	}
	res.inbox = inbox.count(t.a.id, res.sent)
	res.punchLines, res.warnLines = t.countLogLines()
	for _, ps := range []*peerState{t.a, t.b} {
		st, err := t.status(ctx, ps)
		if err != nil {
			return res, err
		}
		if st.HolePunch != nil {
			if res.punches == nil {
				res.punches = &punchStats{}
			}
			res.punches.add(*st.HolePunch)
		}
		res.observed = append(res.observed, st.Reachability.Observed...)
	}
	for _, p := range []*proc{t.relay, t.a.p, t.b.p} {
		if p.exited() {
			return res, fmt.Errorf("%s exited during the trial; log: %s", p.name, p.log.Name())
		}
	}
	return res, nil
}

// setup builds the lab, starts the relay and both peers, and waits until
// each peer holds a reservation.
func (t *trial) setup(ctx context.Context) error {
	if err := t.l.build(ctx, t.sc); err != nil {
		return fmt.Errorf("build lab: %w", err)
	}
	t.relayArgs = []string{"relay", "--data", filepath.Join(t.dir, "relay"), "--api", "127.0.0.1:0", "--no-dht",
		"--addr-file", filepath.Join(t.dir, "relay.addrs"), "--network", network, "--log-level", t.o.logLevel}
	for _, a := range relayListen(t.o.quic) {
		t.relayArgs = append(t.relayArgs, "--listen", a)
	}
	deadline := time.Now().Add(t.o.ready)
	if err := t.startRelay(ctx, deadline); err != nil {
		return err
	}
	for _, s := range t.sc.sites() {
		data := filepath.Join(t.dir, "peer"+s.name)
		args := []string{"peer", "--data", data, "--api", "127.0.0.1:0", "--no-dht", "--network", network, "--log-level", t.o.logLevel}
		for _, a := range t.relayAddrs {
			if t.o.relayAddrs == "all" && !t.sc.wsOnly || strings.Contains(a, "/ws/") {
				args = append(args, "--relay", a)
			}
		}
		if t.sc.wsOnly {
			args = append(args, "--ws-only")
		}
		p, err := t.l.start(s.peer, "peer"+s.name, filepath.Join(t.dir, "peer"+s.name+".log"), t.o.bin, args...)
		if err != nil {
			return err
		}
		ps := &peerState{s: s, p: p, data: data}
		if t.a == nil {
			t.a = ps
		} else {
			t.b = ps
		}
	}
	for _, ps := range []*peerState{t.a, t.b} {
		for {
			if ps.api == "" {
				if a := readLines(filepath.Join(ps.data, "api.addr")); len(a) > 0 {
					ps.api = a[0]
				}
			}
			if ps.api != "" {
				if st, err := t.status(ctx, ps); err == nil && len(st.Reservations) > 0 {
					ps.id = st.PeerID
					break
				}
			}
			if err := waitStep(ctx, deadline, ps.p, "peer "+ps.s.name+" reservation"); err != nil {
				return err
			}
		}
	}
	return nil
}

// relayListen is the relay's listen addresses in the lab: TCP, WebSocket,
// and QUIC when the binary has it, on two UDP ports: the relay answers
// netcheck on both, so a peer tells a NAT that maps per destination
// (symmetric) from one that does not with the lab's one relay.
func relayListen(quic bool) []string {
	out := []string{
		fmt.Sprintf("/ip4/%s/tcp/%d", relayIP, relayTCP),
		fmt.Sprintf("/ip4/%s/tcp/%d/ws", relayIP, relayWS),
	}
	if quic {
		out = append(out, fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", relayIP, relayTCP),
			fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", relayIP, relayQUIC2))
	}
	return out
}

// startRelay starts the relay and waits until it has written its addresses.
func (t *trial) startRelay(ctx context.Context, deadline time.Time) error {
	addrFile := filepath.Join(t.dir, "relay.addrs")
	if err := os.Remove(addrFile); err != nil && !os.IsNotExist(err) {
		return err
	}
	relay, err := t.l.start(nsRelay, "relay", filepath.Join(t.dir, "relay.log"), t.o.bin, t.relayArgs...)
	if err != nil {
		return err
	}
	t.relay = relay
	for {
		var addrs []string
		for _, a := range readLines(addrFile) {
			if strings.HasPrefix(a, "/ip4/"+relayIP+"/") {
				addrs = append(addrs, a)
			}
		}
		if len(addrs) > 0 {
			t.relayAddrs = addrs
			return nil
		}
		if err := waitStep(ctx, deadline, relay, "relay address file"); err != nil {
			return err
		}
	}
}

// restartRelay is fault:relay-restart: SIGTERM, wait for the exit, start
// again with the same data directory (so the same identity) and addresses.
func (t *trial) restartRelay(ctx context.Context) error {
	t.relay.stop()
	return t.startRelay(ctx, time.Now().Add(t.o.ready))
}

// status is a peer's `overlay status --json`.
func (t *trial) status(ctx context.Context, ps *peerState) (statusJSON, error) {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var st statusJSON
	out, err := t.l.nsExec(qctx, ps.s.peer, t.o.bin, "status", "--json", "--api", ps.api)
	if err == nil {
		err = decodeJSON("status", out, &st)
	}
	return st, err
}

// path is B's path in A's peer book: direct, relayed, none; "unknown" when
// B is not in the book, "error" when the query failed.
// The first failure of a trial is printed.
func (t *trial) path(ctx context.Context) string { return t.pathFrom(ctx, t.a, t.b) }

// pathFrom is to's path in from's peer book.
func (t *trial) pathFrom(ctx context.Context, from, to *peerState) string {
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	out, err := t.l.nsExec(qctx, from.s.peer, t.o.bin, "peers", "--json", "--api", from.api)
	var ps []peerJSON
	if err == nil {
		err = decodeJSON("peers", out, &ps)
	}
	if err != nil {
		if !t.pathFailed && ctx.Err() == nil {
			t.pathFailed = true
			fmt.Fprintf(os.Stderr, "natlab: %s: reading A's peer book failed (path \"error\"): %s\n", t.sc.name, firstLine(err.Error(), 300))
		}
		return "error"
	}
	for _, p := range ps {
		if p.ID == to.id {
			return p.Path
		}
	}
	return "unknown"
}

// directVia reads router A's conntrack table for flows between A and B's
// router, the direct path: "tcp" if a TCP flow is established, "udp" if a
// UDP flow (QUIC) has seen replies, both joined by "+", "" if neither.
//
// On the same LAN no router sees the direct path: "tcp" if peer A has an
// established TCP connection to B's LAN address, else "udp" (QUIC, the only
// other transport a direct connection can use here).
func (t *trial) directVia(ctx context.Context) string {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if t.sc.sameLAN {
		out, err := t.l.nsExec(qctx, t.a.s.peer, "ss", "-Htn", "state", "established", "dst", t.b.s.peerIP)
		switch {
		case err != nil:
			return "error"
		case strings.TrimSpace(string(out)) != "":
			return "tcp"
		}
		return "udp"
	}
	out, err := t.l.nsExec(qctx, sites[0].rtr, "conntrack", "-L", "-d", sites[1].wanIP)
	if err != nil {
		return "error"
	}
	var tcp, udp bool
	for _, l := range strings.Split(string(out), "\n") {
		tcp = tcp || strings.HasPrefix(l, "tcp") && strings.Contains(l, " ESTABLISHED ")
		udp = udp || strings.HasPrefix(l, "udp") && strings.Contains(l, "[ASSURED]")
	}
	switch {
	case tcp && udp:
		return "tcp+udp"
	case tcp:
		return "tcp"
	case udp:
		return "udp"
	}
	return ""
}

var (
	punchLine = regexp.MustCompile(`(?i)hole[ -]?punch|dcutr`)
	warnLine  = regexp.MustCompile(`level=(WARN|ERROR)`)
)

// countLogLines counts the peers' log lines that mention hole punching (a
// retry storm shows here) and those at WARN or ERROR.
func (t *trial) countLogLines() (punch, warn int) {
	for _, ps := range []*peerState{t.a, t.b} {
		for _, l := range readLines(ps.p.log.Name()) {
			if punchLine.MatchString(l) {
				punch++
			}
			if warnLine.MatchString(l) {
				warn++
			}
		}
	}
	return punch, warn
}

// waitStep sleeps a little, failing on interrupt, deadline, or the awaited
// process having exited.
func waitStep(ctx context.Context, deadline time.Time, p *proc, what string) error {
	if p.exited() {
		log, _ := os.ReadFile(p.log.Name())
		return fmt.Errorf("waiting for %s: %s exited:\n%s", what, p.name, tail(string(log), 10))
	}
	if time.Now().After(deadline) {
		log, _ := os.ReadFile(p.log.Name())
		return fmt.Errorf("timed out waiting for %s; last lines of %s log:\n%s", what, p.name, tail(string(log), 10))
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(100 * time.Millisecond):
		return nil
	}
}
