package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A message's text is "PUBLISHER SEQ UNIXNANO PADDING": publisher index,
// its sequence from 1, and the host's clock when the line was written to
// 'overlay pub --stdin' (the containers share the host's clock).
func messageText(pub, seq int, pad string) string {
	return fmt.Sprintf("%d %d %d %s", pub, seq, time.Now().UnixNano(), pad)
}

func parseText(s string) (pub, seq int, sent time.Time, ok bool) {
	f := strings.Fields(s)
	if len(f) < 3 {
		return 0, 0, time.Time{}, false
	}
	p, err1 := strconv.Atoi(f[0])
	q, err2 := strconv.Atoi(f[1])
	ns, err3 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, time.Time{}, false
	}
	return p, q, time.Unix(0, ns), true
}

// follower reads one member's 'overlay sub --json' and checks what it gets:
// each (publisher, seq) once, in order per publisher.
type follower struct {
	n *node

	mu        sync.Mutex
	seen      map[[2]int]bool
	last      map[int]int // publisher -> highest seq delivered
	got       int
	dups      int
	disorder  int                 // a seq at or below one already delivered, not a duplicate
	gaps      int                 // seqs skipped over when a later one came
	missedRep int                 // the 'missed' counts the node reported
	lat       []sample            // publish -> received, per delivery
	lastAt    time.Time           // the latest delivery
	errs      []string            // lines that did not parse, standard error
	from      map[string]struct{} // authors' peer IDs
}

func newFollower(n *node) *follower {
	return &follower{n: n, seen: map[[2]int]bool{}, last: map[int]int{}, from: map[string]struct{}{}}
}

type subMessage struct {
	From     string    `json:"from"`
	Seq      uint64    `json:"seq"`
	Text     *string   `json:"text"`
	Missed   uint64    `json:"missed"`
	Received time.Time `json:"received"`
}

// read consumes the subscription's output until it ends.
func (f *follower) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 2<<20)
	for sc.Scan() {
		var m subMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m.Text == nil {
			f.note("unparsed: " + sc.Text())
			continue
		}
		pub, seq, sent, ok := parseText(*m.Text)
		if !ok {
			continue // not one of ours (the warm-up)
		}
		f.mu.Lock()
		f.missedRep += int(m.Missed)
		f.from[m.From] = struct{}{}
		k := [2]int{pub, seq}
		switch {
		case f.seen[k]:
			f.dups++
		case seq <= f.last[pub]:
			f.disorder++
			f.seen[k] = true
			f.got++
		default:
			f.gaps += seq - f.last[pub] - 1
			f.last[pub] = seq
			f.seen[k] = true
			f.got++
			f.lat = append(f.lat, sample{sent, m.Received, m.Received.Sub(sent)})
			f.lastAt = m.Received
		}
		f.mu.Unlock()
	}
}

func (f *follower) note(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) < 20 {
		f.errs = append(f.errs, s)
	}
}

func (f *follower) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got
}

func (f *follower) has(pub, seq int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[[2]int{pub, seq}]
}

// follow starts 'overlay sub --json TOPIC' in n's container; the command
// ends with ctx.
func follow(cmd *exec.Cmd, f *follower) error {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	errOut, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: overlay sub: %w", f.n.Name, err)
	}
	go f.read(out)
	go func() {
		sc := bufio.NewScanner(errOut)
		for sc.Scan() {
			f.note("stderr: " + sc.Text())
		}
	}()
	go func() { _ = cmd.Wait() }()
	return nil
}

// sample is one delivery's latency and when its message was published.
type sample struct {
	sent, recv time.Time
	d          time.Duration
}

func durations(s []sample, keep func(sample) bool) []time.Duration {
	var d []time.Duration
	for _, x := range s {
		if keep == nil || keep(x) {
			d = append(d, x.d)
		}
	}
	return d
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p * float64(len(s)-1))
	return s[i]
}
