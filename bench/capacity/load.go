package main

// The load mode: one process that runs many private peers in-process, each
// a full overlay node reserving on the relay, and reports to the parent in
// JSON lines on stdout. It reads commands from stdin: "hold" starts the
// message pairs and counts losses from then on, "report" writes the final
// report; end of input (the parent died) exits.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/overlay-net/overlay/bench/capacity/relayproc"
	"github.com/overlay-net/overlay/events"
	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/protocol"
)

// loadMsg is one line from a load process.
type loadMsg struct {
	Type string `json:"type"` // progress, final
	Proc int    `json:"proc"`
	loadCounts
	// final only
	NotReservedReasons map[string]int `json:"not_reserved_reasons,omitempty"`
	NotReservedStates  map[string]int `json:"not_reserved_states,omitempty"`
	LostReasons        map[string]int `json:"lost_reasons,omitempty"`
	StartErrors        map[string]int `json:"start_errors,omitempty"`
	SendErrors         map[string]int `json:"send_errors,omitempty"`
	RTTus              []int64        `json:"rtt_us,omitempty"`
	ReserveMs          []int64        `json:"reserve_ms,omitempty"`
}

type loadCounts struct {
	Started, StartFailed, Reserved, NeverReserved int
	Gained, Lost, Renewed                         int64
	LostHold, RenewedHold                         int64
	FirstStartNs, LastStartNs, AllReservedNs      int64
	Pairs, Sent, SendOK, SendFailed, WarmupFailed int64
}

type loadPeer struct {
	n       *node.Node // a full node (message pairs), or
	thin    *thinPeer  // a peer that only holds its reservation
	startNs int64
	mu      sync.Mutex
	gained  int
	state   events.RelayState
	reason  string
}

type loader struct {
	full     bool
	proc     int
	relay    ma.Multiaddr
	count    int
	pairs    int
	rate     float64
	sendTO   time.Duration
	peers    []atomic.Pointer[loadPeer]
	holding  atomic.Bool
	firstNs  int64
	lastNs   atomic.Int64
	allNs    atomic.Int64
	mu       sync.Mutex
	gained   atomic.Int64
	lost     atomic.Int64
	renewed  atomic.Int64
	lostH    atomic.Int64
	renewedH atomic.Int64
	sent     atomic.Int64
	sendOK   atomic.Int64
	sendFail atomic.Int64
	warmFail atomic.Int64
	started  atomic.Int64
	failed   atomic.Int64
	lostWhy  map[string]int
	startErr map[string]int
	sendErr  map[string]int
	rtts     []int64
	resMs    []int64
	out      *json.Encoder
	outMu    sync.Mutex
}

func runLoad(proc int, relayAddr string, count, pairs int, rate float64, sendTO time.Duration, full bool) error {
	ra, err := ma.NewMultiaddr(relayAddr)
	if err != nil {
		return err
	}
	l := &loader{proc: proc, relay: ra, full: full, count: count, pairs: pairs, rate: rate, sendTO: sendTO,
		peers: make([]atomic.Pointer[loadPeer], count), lostWhy: map[string]int{}, startErr: map[string]int{},
		sendErr: map[string]int{}, out: json.NewEncoder(os.Stdout)}
	l.firstNs = time.Now().UnixNano()
	serveLoadProfile(proc)
	go l.startAll()
	go l.progressLoop()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "hold":
			l.holding.Store(true)
			for i := 0; i+1 < 2*pairs && i+1 < count; i += 2 {
				go l.sendLoop(i, i+1)
			}
		case "report":
			l.emit(l.final())
		}
	}
	os.Exit(0) // parent gone or done: no orderly close of thousands of nodes
	return nil
}

func (l *loader) startAll() {
	sem := make(chan struct{}, 32)
	interval := time.Duration(float64(time.Second) / l.rate)
	t0 := time.Now()
	for i := range l.count {
		if d := time.Until(t0.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			l.startPeer(i)
		}()
	}
}

func (l *loader) startPeer(i int) {
	p := &loadPeer{startNs: time.Now().UnixNano(), state: events.RelayConnecting}
	fail := func(err error) {
		l.failed.Add(1)
		l.mu.Lock()
		l.startErr[relayproc.Normalize(err.Error())]++
		l.mu.Unlock()
	}
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		fail(err)
		return
	}
	if !l.full && i >= 2*l.pairs {
		l.startThin(i, p, key)
		return
	}
	cfg := node.DefaultConfig(protocol.RolePrivate)
	cfg.Key = key
	cfg.Relays = []ma.Multiaddr{l.relay}
	cfg.WebSocketOnly, cfg.Listen = true, nil // as behind a proxy: no TCP or QUIC port
	cfg.DisableDHT = true
	cfg.Network = "bench"
	n, err := node.New(cfg)
	if err != nil {
		fail(err)
		return
	}
	p.n = n
	// Subscribed right after New: the keeper's first event needs a round
	// trip to the relay, so none is missed in practice; the reserved count
	// itself comes from n.Reservations().
	sub, err := n.Host().EventBus().Subscribe(new(events.EvtRelay))
	if err != nil {
		fail(err)
		return
	}
	l.peers[i].Store(p)
	l.started.Add(1)
	l.lastNs.Store(time.Now().UnixNano())
	go func() {
		for e := range sub.Out() {
			l.onEvent(p, e.(events.EvtRelay))
		}
	}()
}

func (l *loader) onEvent(p *loadPeer, ev events.EvtRelay) {
	p.mu.Lock()
	p.state = ev.State
	if ev.Reason != "" {
		p.reason = ev.Reason
	}
	first := ev.Gained() && p.gained == 0
	if ev.Gained() {
		p.gained++
	}
	p.mu.Unlock()
	hold := l.holding.Load()
	switch {
	case ev.Gained():
		l.gained.Add(1)
		if first {
			l.mu.Lock()
			l.resMs = append(l.resMs, (time.Now().UnixNano()-p.startNs)/1e6)
			l.mu.Unlock()
		}
	case ev.Lost():
		l.lost.Add(1)
		if hold {
			l.lostH.Add(1)
		}
		l.mu.Lock()
		l.lostWhy[relayproc.Normalize(string(ev.State)+": "+ev.Reason)]++
		l.mu.Unlock()
	case ev.State == events.RelayReserved && ev.Prev == events.RelayReserved:
		l.renewed.Add(1)
		if hold {
			l.renewedH.Add(1)
		}
	}
}

// sendLoop sends one message a second from peer a to peer b through the
// relay: a warm-up first (it opens the relayed connection; not timed), then
// timed sends until the process ends.
func (l *loader) sendLoop(a, b int) {
	pa, pb := l.peers[a].Load(), l.peers[b].Load()
	if pa == nil || pb == nil {
		return
	}
	to := pb.n.ID()
	payload := make([]byte, 64)
	if _, err := l.send(pa.n, to, payload, 30*time.Second); err != nil {
		l.warmFail.Add(1)
		l.noteSendErr("warm-up: " + err.Error())
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for range t.C {
		l.sent.Add(1)
		rtt, err := l.send(pa.n, to, payload, l.sendTO)
		if err != nil {
			l.sendFail.Add(1)
			l.noteSendErr(err.Error())
			continue
		}
		l.sendOK.Add(1)
		l.mu.Lock()
		l.rtts = append(l.rtts, rtt.Microseconds())
		l.mu.Unlock()
	}
}

func (l *loader) send(n *node.Node, to peer.ID, data []byte, d time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return n.Messages().Send(ctx, to, data)
}

func (l *loader) noteSendErr(s string) {
	l.mu.Lock()
	l.sendErr[relayproc.Normalize(s)]++
	l.mu.Unlock()
}

func (l *loader) emit(m loadMsg) {
	m.Proc = l.proc
	l.outMu.Lock()
	defer l.outMu.Unlock()
	if err := l.out.Encode(m); err != nil {
		os.Exit(0) // parent gone
	}
}

// counts polls every peer's reservations and copies the counters.
func (l *loader) counts() loadCounts {
	c := loadCounts{Pairs: int64(l.pairs), FirstStartNs: l.firstNs}
	c.Started, c.StartFailed = int(l.started.Load()), int(l.failed.Load())
	for i := range l.peers {
		if p := l.peers[i].Load(); p != nil && p.reserved() {
			c.Reserved++
		}
	}
	c.Gained, c.Lost, c.Renewed = l.gained.Load(), l.lost.Load(), l.renewed.Load()
	c.LostHold, c.RenewedHold = l.lostH.Load(), l.renewedH.Load()
	c.Sent, c.SendOK, c.SendFailed, c.WarmupFailed = l.sent.Load(), l.sendOK.Load(), l.sendFail.Load(), l.warmFail.Load()
	if c.Reserved == l.count {
		l.allNs.CompareAndSwap(0, time.Now().UnixNano())
	}
	c.AllReservedNs, c.LastStartNs = l.allNs.Load(), l.lastNs.Load()
	return c
}

func (l *loader) progressLoop() {
	for {
		time.Sleep(250 * time.Millisecond)
		l.emit(loadMsg{Type: "progress", loadCounts: l.counts()})
	}
}

func (l *loader) final() loadMsg {
	m := loadMsg{Type: "final", loadCounts: l.counts(), NotReservedReasons: map[string]int{},
		NotReservedStates: map[string]int{}}
	for i := range l.peers {
		p := l.peers[i].Load()
		if p == nil || p.reserved() {
			continue
		}
		p.mu.Lock()
		if p.gained == 0 {
			m.NeverReserved++
		}
		m.NotReservedStates[string(p.state)]++
		why := p.reason
		if why == "" {
			why = fmt.Sprintf("(no reason; state %s)", p.state)
		}
		m.NotReservedReasons[relayproc.Normalize(why)]++
		p.mu.Unlock()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	m.LostReasons, m.StartErrors, m.SendErrors = l.lostWhy, l.startErr, l.sendErr
	m.RTTus, m.ReserveMs = l.rtts, l.resMs
	return m
}

func (p *loadPeer) reserved() bool {
	if p.thin != nil {
		return p.thin.reserved()
	}
	return len(p.n.Reservations()) > 0
}

func (l *loader) startThin(i int, p *loadPeer, key crypto.PrivKey) {
	info, err := peer.AddrInfoFromP2pAddr(l.relay)
	if err != nil {
		l.failed.Add(1)
		return
	}
	t, err := startThin(key, *info, "bench", func(ev events.EvtRelay) { l.onEvent(p, ev) })
	if err != nil {
		l.failed.Add(1)
		l.mu.Lock()
		l.startErr[relayproc.Normalize(err.Error())]++
		l.mu.Unlock()
		return
	}
	p.thin = t
	l.peers[i].Store(p)
	l.started.Add(1)
	l.lastNs.Store(time.Now().UnixNano())
}
