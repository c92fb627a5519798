package main

// Attacks run in a child process of this same program (-attacker NAME), so
// that the attackers' goroutines, memory and garbage collection do not
// slow the members whose round trips the suite measures. The child says
// "ready" once the attack is in force, reads "stop" on stdin, and answers
// with what the attacker saw.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/overlay-net/overlay/bench/capacity/relayproc"
)

// attackerMsg is one line from the attacker process.
type attackerMsg struct {
	Ready       bool   `json:"ready,omitempty"`
	Error       string `json:"error,omitempty"`
	Detail      string `json:"detail,omitempty"`
	APIAccepted int64  `json:"api_accepted,omitempty"`
}

// attackerMain is the child: it runs one attack until told to stop. Its
// lifetime is bounded so that a lost parent leaves nothing behind.
func attackerMain(name string, n int, targetJSON string, lifetime time.Duration) {
	raiseFileLimit()
	out := json.NewEncoder(os.Stdout)
	fail := func(err error) {
		out.Encode(attackerMsg{Error: err.Error()})
		os.Exit(1)
	}
	var t target
	if err := json.Unmarshal([]byte(targetJSON), &t); err != nil {
		fail(fmt.Errorf("-target: %w", err))
	}
	as, err := pick(name)
	if err != nil {
		fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), lifetime)
	defer cancel()
	run, err := as[0].start(ctx, t, n)
	if err != nil {
		fail(err)
	}
	out.Encode(attackerMsg{Ready: true})
	stop := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if sc.Text() == "stop" {
				stop <- true
				return
			}
		}
		stop <- false // parent gone
	}()
	select {
	case ok := <-stop:
		if !ok {
			os.Exit(1)
		}
	case <-ctx.Done():
	}
	m := attackerMsg{Detail: run.stop()}
	if run.apiAccepted != nil {
		m.APIAccepted = run.apiAccepted.Load()
	}
	out.Encode(m)
}

// attacker is a running attacker process, seen from the parent.
type attacker struct {
	cmd   *exec.Cmd
	in    *os.File
	lines chan attackerMsg
}

// startAttacker runs attack a with n against t in a child process and
// waits until it is in force, at most ramp.
func startAttacker(dir string, a attack, n int, t target, ramp, lifetime time.Duration) (*attacker, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	tj, _ := json.Marshal(t)
	logf, err := os.Create(filepath.Join(dir, "attacker.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(self, "-attacker", a.name, "-attacker-n", strconv.Itoa(n), "-attacker-target", string(tj),
		"-attacker-lifetime", lifetime.String())
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdin = r
	if err := relayproc.Start(cmd); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("start attacker: %w", err)
	}
	r.Close()
	at := &attacker{cmd: cmd, in: w, lines: make(chan attackerMsg, 4)}
	go func() {
		defer close(at.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			var m attackerMsg
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				at.lines <- m
			}
		}
	}()
	select {
	case m, ok := <-at.lines:
		switch {
		case !ok:
			at.kill()
			return nil, fmt.Errorf("attacker exited before the attack was in force (%s)", filepath.Join(dir, "attacker.log"))
		case m.Error != "":
			at.kill()
			return nil, fmt.Errorf("attacker: %s", m.Error)
		}
		return at, nil
	case <-time.After(ramp):
		at.kill()
		return nil, fmt.Errorf("attack not in force within %s", ramp)
	}
}

// stop tells the attacker to stop and returns what it saw.
func (at *attacker) stop(timeout time.Duration) (attackerMsg, error) {
	defer at.kill()
	fmt.Fprintln(at.in, "stop")
	select {
	case m, ok := <-at.lines:
		if !ok {
			return m, fmt.Errorf("attacker exited without a report")
		}
		return m, nil
	case <-time.After(timeout):
		return attackerMsg{}, fmt.Errorf("attacker did not stop within %s", timeout)
	}
}

func (at *attacker) kill() {
	at.in.Close()
	relayproc.Kill(at.cmd.Process.Pid, 9)
	at.cmd.Wait()
}
