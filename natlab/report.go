package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// row aggregates the trials of one scenario.
type row struct {
	sc                          scenario
	trials                      int // completed
	failures                    []string
	directN                     int
	directAfter                 []time.Duration
	sent, acked, lost           int
	dup, reordered, ackedMissed int
	endPaths                    map[string]int
	via                         map[string]int // of trials that ended direct: transport of the direct flows
	punches                     *punchStats    // nil if no trial's peers reported them
	punchLines, warnLines       int
	details                     []trialJSON
}

func (r *row) add(t trialResult) {
	r.trials++
	r.sent += t.sent
	r.acked += t.acked
	r.lost += t.lost
	r.dup += t.inbox.dup
	r.reordered += t.inbox.reordered
	// Each unacknowledged message may be missing from B's inbox; more
	// missing than that means an acknowledged message never arrived.
	r.ackedMissed += max(0, len(t.inbox.missing)-t.lost)
	if t.direct {
		r.directN++
		r.directAfter = append(r.directAfter, t.directAfter)
	}
	if r.endPaths == nil {
		r.endPaths = map[string]int{}
	}
	r.endPaths[t.endPath]++
	if t.endPath == "direct" {
		if r.via == nil {
			r.via = map[string]int{}
		}
		r.via[orDash(t.directVia)]++
	}
	if t.punches != nil {
		if r.punches == nil {
			r.punches = &punchStats{}
		}
		r.punches.add(*t.punches)
	}
	r.punchLines += t.punchLines
	r.warnLines += t.warnLines
	r.details = append(r.details, t.json())
}

func (r *row) fail(err error) {
	r.failures = append(r.failures, err.Error())
	r.details = append(r.details, trialJSON{Error: err.Error()})
}

// problems lists why the row fails: always for failed trials, losses,
// duplicates and reordering; with check also for a path that is not what
// the scenario expects.
func (r *row) problems(check bool) []string {
	p := []string{}
	if n := len(r.failures); n > 0 {
		p = append(p, fmt.Sprintf("%d trial(s) failed to set up or finish", n))
	}
	if r.trials == 0 && len(r.failures) == 0 {
		p = append(p, "no trial ran")
	}
	if r.lost > 0 {
		p = append(p, fmt.Sprintf("%d message(s) never acknowledged", r.lost))
	}
	if r.ackedMissed > 0 {
		p = append(p, fmt.Sprintf("%d acknowledged message(s) missing from B's inbox", r.ackedMissed))
	}
	if r.dup > 0 {
		p = append(p, fmt.Sprintf("%d message(s) delivered twice", r.dup))
	}
	if r.reordered > 0 {
		p = append(p, fmt.Sprintf("%d message(s) delivered out of order", r.reordered))
	}
	if !check {
		return p
	}
	switch r.sc.expect {
	case mustDirect:
		if r.directN < r.trials {
			p = append(p, fmt.Sprintf("only %d of %d trials went direct", r.directN, r.trials))
		}
	case mustRelayed:
		if r.directN > 0 {
			p = append(p, fmt.Sprintf("%d of %d trials went direct, want relayed only", r.directN, r.trials))
		}
	}
	return p
}

// percentile is the nearest-rank percentile of sorted s.
func percentile(s []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// toDirect is the p50, p90 and p95 of the times to direct of the trials
// that went direct.
func (r *row) toDirect() (p50, p90, p95 time.Duration, ok bool) {
	if len(r.directAfter) == 0 {
		return 0, 0, 0, false
	}
	s := slices.Sorted(slices.Values(r.directAfter))
	return percentile(s, 50), percentile(s, 90), percentile(s, 95), true
}

// counts is "a 3/5, b 2/5" for a count map over n trials.
func counts(m map[string]int, n int) string {
	var parts []string
	for k, c := range m {
		parts = append(parts, fmt.Sprintf("%s %d/%d", k, c, n))
	}
	slices.Sort(parts)
	return orDash(strings.Join(parts, ", "))
}

func printTable(w io.Writer, rows []*row) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYOUT/FAULT\tTRIALS\tDIRECT\tTO DIRECT P50\tP90\tSENT\tACKED\tLOST\tDUP\tREORD\tPATH AT END\tDIRECT VIA\tPUNCH TRY/OK/FAIL\tLOG PUNCH/WARN")
	for _, r := range rows {
		trials := fmt.Sprint(r.trials)
		if n := len(r.failures); n > 0 {
			trials = fmt.Sprintf("%d (+%d failed)", r.trials, n)
		}
		rate := "-"
		if r.trials > 0 {
			rate = fmt.Sprintf("%d/%d (%.0f%%)", r.directN, r.trials, 100*float64(r.directN)/float64(r.trials))
		}
		p50, p90 := "-", "-"
		if a, b, _, ok := r.toDirect(); ok {
			p50, p90 = a.Round(10*time.Millisecond).String(), b.Round(10*time.Millisecond).String()
		}
		punches := "-"
		if p := r.punches; p != nil {
			punches = fmt.Sprintf("%d/%d/%d", p.Attempts, p.Succeeded, p.Failed)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%d/%d\n", r.sc.name, trials, rate, p50, p90,
			r.sent, r.acked, r.lost, r.dup, r.reordered, counts(r.endPaths, r.trials), counts(r.via, r.endPaths["direct"]),
			punches, r.punchLines, r.warnLines)
	}
	tw.Flush()
}

// trialJSON is one trial in the -json report.
type trialJSON struct {
	Error         string       `json:"error,omitempty"`
	Sent          int          `json:"sent"`
	Acked         int          `json:"acknowledged"`
	Lost          int          `json:"lost"`
	RTTP50MS      float64      `json:"rtt_p50_ms"`
	RTTMaxMS      float64      `json:"rtt_max_ms"`
	Delivered     int          `json:"delivered"`
	Dup           int          `json:"duplicated"`
	Reordered     int          `json:"reordered"`
	Missing       []int        `json:"missing,omitempty"`
	PathBefore    string       `json:"path_before,omitempty"`
	DirectAfterMS *float64     `json:"direct_after_ms,omitempty"`
	FaultAtMS     *float64     `json:"fault_at_ms,omitempty"`
	PathAtEnd     string       `json:"path_at_end,omitempty"`
	PathAtEndBA   string       `json:"path_at_end_b_to_a,omitempty"`
	DirectVia     string       `json:"direct_via,omitempty"`
	Timeline      []changeJSON `json:"path_timeline,omitempty"`
	Punches       *punchStats  `json:"hole_punches,omitempty"`
	Observed      []string     `json:"observed_addrs,omitempty"`
	PunchLines    int          `json:"punch_log_lines"`
	WarnLines     int          `json:"warn_log_lines"`
	FirstErrors   []string     `json:"first_send_errors,omitempty"`
}

type changeJSON struct {
	AtMS float64 `json:"at_ms"`
	Path string  `json:"path"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (t trialResult) json() trialJSON {
	j := trialJSON{Sent: t.sent, Acked: t.acked, Lost: t.lost, RTTP50MS: ms(t.rttP50), RTTMaxMS: ms(t.rttMax), Delivered: t.inbox.delivered, Dup: t.inbox.dup,
		Reordered: t.inbox.reordered, Missing: t.inbox.missing, PathBefore: t.pathBefore, PathAtEnd: t.endPath, PathAtEndBA: t.endPathBA, DirectVia: t.directVia,
		Punches: t.punches, Observed: t.observed, PunchLines: t.punchLines, WarnLines: t.warnLines, FirstErrors: t.firstErrors}
	if t.direct {
		v := ms(t.directAfter)
		j.DirectAfterMS = &v
	}
	if t.faultAt > 0 {
		v := ms(t.faultAt)
		j.FaultAtMS = &v
	}
	for _, c := range t.timeline {
		j.Timeline = append(j.Timeline, changeJSON{ms(c.At), c.Path})
	}
	return j
}

// timeline is a trial's path changes for the log: "relayed@0.3s direct@1.2s".
func (t trialResult) timelineText() string {
	var parts []string
	for _, c := range t.timeline {
		parts = append(parts, fmt.Sprintf("%s@%s", c.Path, c.At.Round(10*time.Millisecond)))
	}
	return orDash(strings.Join(parts, " "))
}

func (t trialResult) punchText() string {
	if p := t.punches; p != nil {
		return fmt.Sprintf("hole punches: %d attempts, %d succeeded, %d failed, %d pre-punch packets; sprays: %d attempts (both sides), %d refused, %d direct, %d packets, %d probes",
			p.Attempts, p.Succeeded, p.Failed, p.PrePunches, p.Spray.Attempts, p.Spray.Refused, p.Spray.Direct, p.Spray.Packets, p.Spray.Probes)
	}
	return "hole punches: not reported"
}

type rowJSON struct {
	Name          string         `json:"name"`
	Sides         []string       `json:"sides,omitempty"` // matrix cells: the behaviours of A and B
	NAT           [2]string      `json:"nat"`
	DropUDP       [2]bool        `json:"drop_udp"`
	Filter        [2]string      `json:"filter"`
	CGNAT         [2]bool        `json:"cgnat"`
	SameLAN       bool           `json:"same_lan"`
	WSOnly        bool           `json:"ws_only"`
	Fault         string         `json:"fault,omitempty"`
	Expect        string         `json:"expect"`
	Trials        int            `json:"trials"`
	Failed        int            `json:"failed_trials"`
	Direct        int            `json:"direct"`
	ToDirectP50MS *float64       `json:"to_direct_p50_ms,omitempty"`
	ToDirectP90MS *float64       `json:"to_direct_p90_ms,omitempty"`
	ToDirectP95MS *float64       `json:"to_direct_p95_ms,omitempty"`
	Sent          int            `json:"sent"`
	Acked         int            `json:"acknowledged"`
	Lost          int            `json:"lost"`
	Dup           int            `json:"duplicated"`
	Reordered     int            `json:"reordered"`
	AckedMissing  int            `json:"acknowledged_not_delivered"`
	PathAtEnd     map[string]int `json:"path_at_end"`
	DirectVia     map[string]int `json:"direct_via,omitempty"`
	Punches       *punchStats    `json:"hole_punches,omitempty"`
	PunchLines    int            `json:"punch_log_lines"`
	WarnLines     int            `json:"warn_log_lines"`
	Problems      []string       `json:"problems"`
	TrialDetails  []trialJSON    `json:"trial_details"`
}

type reportJSON struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Binary   string    `json:"binary"`
	Check    bool      `json:"check"`
	Pass     bool      `json:"pass"`
	Rows     []rowJSON `json:"rows"`
}

func writeJSON(path string, rep reportJSON, rows []*row) error {
	for _, r := range rows {
		j := rowJSON{Name: r.sc.name, NAT: [2]string{r.sc.nat[0].String(), r.sc.nat[1].String()}, DropUDP: r.sc.dropUDP,
			WSOnly: r.sc.wsOnly, Expect: [...]string{"any", "direct", "relayed"}[r.sc.expect], Trials: r.trials,
			Failed: len(r.failures), Direct: r.directN, Sent: r.sent, Acked: r.acked, Lost: r.lost, Dup: r.dup,
			Reordered: r.reordered, AckedMissing: r.ackedMissed, PathAtEnd: r.endPaths, DirectVia: r.via, Punches: r.punches, PunchLines: r.punchLines,
			WarnLines: r.warnLines, Problems: r.problems(rep.Check), TrialDetails: r.details}
		j.Filter = [2]string{r.sc.filter[0].String(), r.sc.filter[1].String()}
		j.CGNAT, j.SameLAN = r.sc.cgnat, r.sc.sameLAN
		if r.sc.sides[0] != "" {
			j.Sides = r.sc.sides[:]
		}
		if r.sc.fault != nil {
			j.Fault = r.sc.fault.name
		}
		if a, b, c, ok := r.toDirect(); ok {
			x, y, z := ms(a), ms(b), ms(c)
			j.ToDirectP50MS, j.ToDirectP90MS, j.ToDirectP95MS = &x, &y, &z
		}
		rep.Rows = append(rep.Rows, j)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
