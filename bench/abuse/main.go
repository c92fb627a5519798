// Command abuse runs attacks, one at a time and each bounded in count and
// time, against an `overlay relay` process on loopback whose members
// exchange messages through it, and prints one table: whether the relay
// stayed up, its peak RSS, the members' round-trip times before and during
// the attack, how long a new member took to join during it, messages lost
// and strangers the relay refused. Each attack gets a fresh relay and fresh
// members, so one attack's leftovers do not count against the next.
//
//	go run ./bench/abuse -bin bin/overlay [-scale 0.2] [-only idle-sockets] [-strict]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/overlay-net/overlay/bench/capacity/relayproc"
)

// attack is one entry of the suite.
type attack struct {
	name  string
	what  string // the table's description
	count int    // at -scale 1
	start func(ctx context.Context, t target, n int) (*running, error)
}

var suite = []attack{
	{"idle-sockets", "stranger connections held (TCP+WS, silent)", 1000, attackIdle},
	{"stock-hosts", "stock libp2p hosts connect and stay", 500, attackStockHosts},
	{"reservation-flood", "reservation requests from many identities", 500, attackReservations},
	{"half-open-ws", "WebSocket upgrades, then silence", 1000, attackHalfOpenWS},
	{"slow-loris", "requests trickled a byte a second (TCP+WS)", 500, attackSlowLoris},
	{"garbage", "garbage on every listener (TCP, WS, QUIC)", 30, attackGarbage},
	{"oversized-streams", "oversized and trickled handshake/message frames", 100, attackStreams},
	{"control-api", "hostile control API requests", 16, attackAPI},
}

type flags struct {
	bin, jsonOut, only string
	scale              float64
	strict, keep       bool
	before, hold       time.Duration
	ramp, joinTimeout  time.Duration
	certHold           time.Duration
	interval           time.Duration
	rssBoundMiB        int
	members            int
}

func main() {
	var f flags
	flag.StringVar(&f.bin, "bin", "bin/overlay", "path to the overlay binary")
	flag.StringVar(&f.jsonOut, "json", "", "write the results as JSON to this file")
	flag.StringVar(&f.only, "only", "", "run only these attacks (comma separated): "+names()+", and "+certRoundName+" for the certificate-mode round")
	flag.Float64Var(&f.scale, "scale", 1, "multiply every attack's count by this (e.g. 0.1 for a quick run)")
	flag.BoolVar(&f.strict, "strict", false, "exit non-zero when any goal fails (RSS, RTT, join within 2 s), not only when the relay crashes, a message is lost or a new member cannot join at all")
	flag.BoolVar(&f.keep, "keep", false, "keep the temporary directory (relay logs)")
	flag.DurationVar(&f.before, "before", 10*time.Second, "member traffic measured before each attack")
	flag.DurationVar(&f.hold, "hold", 10*time.Second, "how long each attack stays in force (longer while the new member is still joining)")
	flag.DurationVar(&f.ramp, "ramp", 30*time.Second, "longest wait for an attack to be in force")
	flag.DurationVar(&f.joinTimeout, "join-timeout", 20*time.Second, "longest wait for the new member's reservation during an attack")
	flag.DurationVar(&f.interval, "interval", 50*time.Millisecond, "each sending member sends one message this often")
	flag.IntVar(&f.rssBoundMiB, "rss-bound", 256, "goal: relay peak RSS under this many MiB (half of a 512 MiB VPS)")
	flag.IntVar(&f.members, "members", 4, "members exchanging messages (in pairs)")
	flag.DurationVar(&f.certHold, "cert-hold", 5*time.Second, "how long each attack of the certificate round lasts")
	// The child process mode (attacker.go); not for people.
	attackerName := flag.String("attacker", "", "internal: run this attack as the attacker process")
	attackerN := flag.Int("attacker-n", 0, "internal: the attacker's count")
	attackerTarget := flag.String("attacker-target", "", "internal: the relay under attack, JSON")
	attackerLife := flag.Duration("attacker-lifetime", 5*time.Minute, "internal: the attacker's longest life")
	flag.Parse()
	if *attackerName != "" {
		attackerMain(*attackerName, *attackerN, *attackerTarget, *attackerLife)
		return
	}
	raiseFileLimit()
	attacks, certRound, err := pickRounds(f.only)
	if err != nil {
		fatal(err)
	}
	dir, cleanup, err := relayproc.Workdir("overlay-abuse-", f.keep, nil)
	if err != nil {
		fatal(err)
	}
	res := &Result{Started: time.Now().UTC().Format(time.RFC3339), Scale: f.scale, RSSBoundMiB: f.rssBoundMiB,
		HoldS: f.hold.Seconds(), Members: f.members}
	var runErr error
	for _, a := range attacks {
		row, err := runAttack(f, dir, a)
		if err != nil {
			logf("%s: harness failed: %v", a.name, err)
			row.HarnessError = err.Error()
			runErr = errors.Join(runErr, fmt.Errorf("%s: %w", a.name, err))
		}
		row.check(f)
		res.Rows = append(res.Rows, row)
	}
	if certRound {
		cr, err := runCertRound(f, dir, f.certHold)
		if err != nil {
			logf("%s: harness failed: %v", certRoundName, err)
			cr.Error = err.Error()
			runErr = errors.Join(runErr, fmt.Errorf("%s: %w", certRoundName, err))
		}
		res.Certs = cr
	}
	cleanup()
	err = relayproc.Report(res, func(r *Result) { printTable(os.Stdout, r) }, f.jsonOut, runErr)
	if f.keep {
		fmt.Fprintln(os.Stderr, "logs kept in", dir)
	}
	if err != nil {
		fatal(err)
	}
	for _, r := range res.Rows {
		if !r.RelayUp || r.Lost > 0 {
			fatal(fmt.Errorf("%s: relay up %v, %d messages lost", r.Attack, r.RelayUp, r.Lost))
		}
		// A member locked out for the whole join timeout is a broken
		// defence, not a slow machine: it fails without -strict too.
		if r.JoinS < 0 {
			fatal(fmt.Errorf("%s: a new member could not join within %s: %s", r.Attack, f.joinTimeout, r.JoinError))
		}
		if f.strict && len(r.Failed) > 0 {
			fatal(fmt.Errorf("%s: goals failed: %s", r.Attack, strings.Join(r.Failed, ", ")))
		}
	}
	if c := res.Certs; c != nil {
		if !c.RelayUp || c.Lost > 0 {
			fatal(fmt.Errorf("%s: relay up %v, %d messages lost", certRoundName, c.RelayUp, c.Lost))
		}
		for _, r := range c.Rows {
			// An attack admitted is a broken defence: it fails without
			// -strict too.
			if len(r.Goals) > 0 {
				fatal(fmt.Errorf("%s: goals failed: %s", r.Attack, strings.Join(r.Goals, ", ")))
			}
		}
	}
}

// pickRounds is pick, and whether the certificate round runs: always
// without -only, else when named.
func pickRounds(only string) ([]attack, bool, error) {
	if only == "" {
		as, err := pick(only)
		return as, true, err
	}
	var rest []string
	certs := false
	for _, n := range strings.Split(only, ",") {
		if strings.TrimSpace(n) == certRoundName {
			certs = true
		} else {
			rest = append(rest, n)
		}
	}
	if len(rest) == 0 {
		return nil, certs, nil
	}
	as, err := pick(strings.Join(rest, ","))
	return as, certs, err
}

func names() string {
	var s []string
	for _, a := range suite {
		s = append(s, a.name)
	}
	return strings.Join(s, ", ")
}

func pick(only string) ([]attack, error) {
	if only == "" {
		return suite, nil
	}
	var out []attack
	for _, n := range strings.Split(only, ",") {
		found := false
		for _, a := range suite {
			if a.name == strings.TrimSpace(n) {
				out, found = append(out, a), true
			}
		}
		if !found {
			return nil, fmt.Errorf("-only: no attack %q (have %s)", n, names())
		}
	}
	return out, nil
}

// raiseFileLimit lifts this process's open-file limit to its hard limit:
// the attacks hold thousands of sockets. The relay child inherits it.
func raiseFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		logf("cannot raise the open-file limit (%v); attacks may fail to open sockets", err)
	}
	if l.Cur < 8192 {
		logf("open-file limit is %d: attacks of 1,000 sockets may fail; raise it with ulimit -n", l.Cur)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "abuse:", err)
	os.Exit(1)
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", a...)
}

func absBin(bin string) (string, error) {
	b, err := filepath.Abs(bin)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(b); err != nil {
		return "", fmt.Errorf("overlay binary: %w (make build)", err)
	}
	return b, nil
}
