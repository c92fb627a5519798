package main

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// inboxMsg is one message of `overlay inbox --json`.
type inboxMsg struct {
	From       string    `json:"from"`
	Seq        uint64    `json:"seq"`
	ReceivedAt time.Time `json:"received_at"`
	Data       string    `json:"data"`
}

// inboxLog gathers B's inbox over several reads: the node keeps only the
// newest messages, so a long trial reads it more than once. A reception
// seen in two reads counts once; a message received twice (two receptions,
// two times) counts twice.
type inboxLog struct {
	seen map[string]bool
	msgs []inboxMsg
}

func (l *inboxLog) add(out []byte) error {
	var msgs []inboxMsg
	if err := decodeJSON("inbox", out, &msgs); err != nil {
		return err
	}
	if l.seen == nil {
		l.seen = map[string]bool{}
	}
	for _, m := range msgs {
		k := fmt.Sprintf("%s|%d|%s|%s", m.From, m.Seq, m.ReceivedAt.Format(time.RFC3339Nano), m.Data)
		if !l.seen[k] {
			l.seen[k] = true
			l.msgs = append(l.msgs, m)
		}
	}
	return nil
}

// delivery is what B received of A's soak ("soak N at TIME", N from 1).
type delivery struct {
	delivered int   // distinct soak messages received
	dup       int   // receptions beyond the first of a message
	reordered int   // messages received after a higher-numbered one
	missing   []int // numbers up to sent never received
}

var soakText = regexp.MustCompile(`^soak (\d+) at `)

// count reads the soak's messages from peer from, in order of reception.
func (l *inboxLog) count(from string, sent int) delivery {
	msgs := slices.Clone(l.msgs)
	slices.SortStableFunc(msgs, func(a, b inboxMsg) int { return a.ReceivedAt.Compare(b.ReceivedAt) })
	var d delivery
	got := map[int]bool{}
	highest := 0
	for _, m := range msgs {
		sm := soakText.FindStringSubmatch(m.Data)
		if m.From != from || sm == nil {
			continue
		}
		n, _ := strconv.Atoi(sm[1])
		if got[n] {
			d.dup++
			continue
		}
		got[n] = true
		d.delivered++
		if n < highest {
			d.reordered++
		}
		highest = max(highest, n)
	}
	for n := 1; n <= sent; n++ {
		if !got[n] {
			d.missing = append(d.missing, n)
		}
	}
	return d
}
