// The checks of the testnet, one function per capability checked.

package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// pairs are all ordered pairs of distinct members.
func pairs() [][2]string {
	var out [][2]string
	for _, a := range members {
		for _, b := range members {
			if a != b {
				out = append(out, [2]string{a, b})
			}
		}
	}
	return out
}

// checkReservations waits until every member holds a reservation on each of
// want and on none of gone, and adds a row per member and relay of show
// (want if nil), with the ping time to the relay. It returns when the last
// member got there, counted from since.
func (c *checker) checkReservations(step string, want, gone, show []string, timeout time.Duration, since time.Time) time.Duration {
	if show == nil {
		show = want
	}
	group := c.newGroup()
	deadline := time.Now().Add(timeout)
	var worst time.Duration
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var held []string
			var err error
			for {
				var s status
				if s, err = c.status(m); err == nil {
					held = held[:0]
					for _, r := range s.Reservations {
						held = append(held, c.name(r.Relay))
					}
					err = reservationsOK(held, want, gone)
				}
				if err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			took := time.Since(since)
			mu.Lock()
			worst = max(worst, took)
			mu.Unlock()
			for _, r := range show {
				rw := row{step: step, pair: m + " -> " + r, path: "-", rtt: "-", group: group}
				switch {
				case err != nil:
					rw.result = fmt.Sprintf("FAIL after %s: %v (holds: %s)", took.Round(100*time.Millisecond), err, orNone(held))
				default:
					rw.ok = true
					rw.result = fmt.Sprintf("reserved (after %s)", took.Round(100*time.Millisecond))
					if len(gone) > 0 {
						rw.result = fmt.Sprintf("reserved; %s dropped (after %s)", strings.Join(gone, ", "), took.Round(100*time.Millisecond))
					}
					rw.path, rw.rtt = c.pathAndPing(m, r)
				}
				c.add(rw)
			}
		}()
	}
	wg.Wait()
	return worst
}

func reservationsOK(held, want, gone []string) error {
	var missing, extra []string
	for _, w := range want {
		if !slices.Contains(held, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range gone {
		if slices.Contains(held, g) {
			extra = append(extra, g)
		}
	}
	switch {
	case len(missing) > 0:
		return fmt.Errorf("no reservation on %s", strings.Join(missing, ", "))
	case len(extra) > 0:
		return fmt.Errorf("still holds a reservation on %s", strings.Join(extra, ", "))
	}
	return nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// name maps a peer ID to its service name, if known.
func (c *checker) name(id string) string {
	if n, ok := c.names[id]; ok {
		return n
	}
	return id
}

// pathAndPing returns how from reaches to (from from's peer book) and one
// ping round trip.
func (c *checker) pathAndPing(from, to string) (path, rtt string) {
	path, rtt = "?", "?"
	var res struct {
		RTTs []time.Duration `json:"rtts_ns"`
	}
	if err := c.ovJSON(from, &res, 15*time.Second, "ping", "--count", "1", "--timeout", "10s", c.peerIDs[to]); err == nil && len(res.RTTs) > 0 {
		rtt = fmtRTT(res.RTTs[0])
	}
	if p, err := c.bookEntry(from, c.peerIDs[to]); err == nil {
		path = p.Path
	}
	return path, rtt
}

func (c *checker) bookEntry(svc, id string) (peerInfo, error) {
	var ps []peerInfo
	if err := c.ovJSON(svc, &ps, 10*time.Second, "peers", "--timeout", "5s"); err != nil {
		return peerInfo{}, err
	}
	for _, p := range ps {
		if p.PeerID == id {
			return p, nil
		}
	}
	return peerInfo{}, fmt.Errorf("%s: %s not in the peer book", svc, c.name(id))
}

func fmtRTT(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dµs", d.Microseconds())
}

// checkMessages sends a message for every pair, retrying each until it is
// acknowledged or the overall timeout passes, then checks that it is in the
// receiver's inbox and that a pair of two private peers goes through a
// relay. It returns when the last pair got through, counted from since.
func (c *checker) checkMessages(step string, ps [][2]string, timeout time.Duration, since time.Time, firstTry bool) (time.Duration, bool) {
	deadline := time.Now().Add(timeout)
	group := c.newGroup()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var worst time.Duration
	allOK := true
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from, to := p[0], p[1]
			text := fmt.Sprintf("testnet-check %s %s: %s -> %s", c.runID, step, from, to)
			rw := row{step: step, pair: from + " -> " + to, path: "-", rtt: "-", group: group}
			var rtt time.Duration
			var err error
			tries := 0
			for {
				tries++
				per := min(30*time.Second, max(time.Until(deadline), time.Second))
				var res struct {
					RTT time.Duration `json:"rtt_ns"`
				}
				err = c.ovJSON(from, &res, per+5*time.Second, "send", "--timeout", per.String(), c.peerIDs[to], text)
				rtt = res.RTT
				if err == nil || time.Now().After(deadline) {
					break
				}
				c.progress("%s: %s -> %s: try %d failed after %s: %v", step, from, to, tries,
					time.Since(since).Round(100*time.Millisecond), err)
				time.Sleep(300 * time.Millisecond)
			}
			took := time.Since(since)
			if err == nil {
				err = c.inInbox(to, c.peerIDs[from], text)
			}
			if err == nil {
				var e peerInfo
				if e, err = c.bookEntry(from, c.peerIDs[to]); err == nil {
					rw.path = e.Path
					if slices.Contains(private, from) && slices.Contains(private, to) && e.Path != "relayed" {
						err = fmt.Errorf("path between two private peers is %q, want relayed", e.Path)
					}
				}
			}
			switch {
			case err != nil:
				rw.result = fmt.Sprintf("FAIL after %s, %s: %v", took.Round(100*time.Millisecond), plural(tries, "try", "tries"), err)
			case firstTry && tries == 1:
				rw.ok, rw.rtt, rw.result = true, fmtRTT(rtt), "delivered"
			default:
				rw.ok, rw.rtt = true, fmtRTT(rtt)
				rw.result = fmt.Sprintf("delivered after %s (%s)", took.Round(100*time.Millisecond), plural(tries, "try", "tries"))
			}
			mu.Lock()
			worst = max(worst, took)
			allOK = allOK && rw.ok
			mu.Unlock()
			c.add(rw)
		}()
	}
	wg.Wait()
	return worst, allOK
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// inInbox checks that svc received text from the peer ID from.
func (c *checker) inInbox(svc, from, text string) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		var msgs []message
		err := c.ovJSON(svc, &msgs, 10*time.Second, "inbox", "--timeout", "5s")
		if err == nil {
			for _, m := range msgs {
				if m.From == from && m.Data == text {
					return nil
				}
			}
			err = fmt.Errorf("acknowledged, but not in %s's inbox", svc)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkFailover stops the relay down, checks that every pair is reachable
// again through the relay other within the bound, starts down again and
// checks that every member reserves on it again.
func (c *checker) checkFailover(down, other string) {
	step := down + " stopped"
	c.progress("stopping %s", down)
	t0 := time.Now()
	if _, err := c.composeRun(60*time.Second, "stop", "-t", "10", down); err != nil {
		c.add(row{step: step, pair: "-", result: "FAIL: stop " + down + ": " + err.Error()})
		return
	}
	stopped := time.Since(t0)
	restart := c.onCleanup(func() { _, _ = c.composeRun(60*time.Second, "start", down) })
	worst, ok := c.checkMessages(step, pairs(), *failoverWait, t0, false)
	if ok {
		c.note("%s stopped (took %s): all %d pairs delivered through %s within %s of the stop (bound %s)",
			down, stopped.Round(100*time.Millisecond), len(pairs()), other, worst.Round(100*time.Millisecond), *failoverWait)
	} else {
		c.note("%s stopped (took %s): NOT all pairs reachable within %s", down, stopped.Round(100*time.Millisecond), *failoverWait)
	}
	c.checkReservations(step, []string{other}, []string{down}, nil, 30*time.Second, t0)

	c.progress("starting %s", down)
	t1 := time.Now()
	restart()
	back := c.checkReservations(down+" back", relays, nil, []string{down}, *reserveWait, t1)
	c.note("%s started: every member holds reservations on both relays again %s after the start", down, back.Round(100*time.Millisecond))
	c.checkReReserve(down, t1)
}

// checkIntruder starts a node with another network name on the public
// network and checks that the members refuse it, and that a private peer
// cannot reach it at all.
func (c *checker) checkIntruder() {
	step := "other network"
	c.progress("starting a node of another network")
	prof := []string{"--profile", intruder}
	rm := func() { _, _ = c.composeRun(60*time.Second, append(prof, "rm", "-f", "-s", "-v", intruder)...) }
	rm() // a fresh identity every run
	rm = c.onCleanup(rm)
	if _, err := c.composeRun(60*time.Second, append(prof, "up", "-d", intruder)...); err != nil {
		c.add(row{step: step, pair: "-", result: "FAIL: start intruder: " + err.Error()})
		return
	}
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err = c.resolve([]string{intruder}); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		c.add(row{step: step, pair: "-", result: "FAIL: intruder: " + err.Error()})
		return
	}
	iid := c.peerIDs[intruder]
	ipOut, err := runCmd(20*time.Second, "docker", "inspect", "--format",
		"{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", c.ids[intruder])
	ip := strings.TrimSpace(ipOut)
	if err != nil || ip == "" || strings.Contains(ip, " ") {
		c.add(row{step: step, pair: "-", result: fmt.Sprintf("FAIL: intruder address %q: %v", ip, err)})
		return
	}
	refused := func(from, target string) {
		rw := row{step: step, pair: from + " -> " + c.name(peerOf(target)), path: "-", rtt: "-"}
		_, err := c.ov(from, 25*time.Second, "connect", "--timeout", "15s", target)
		switch {
		case err == nil:
			rw.result = "FAIL: connected"
		case strings.Contains(err.Error(), "refused this node: the peer is on network"):
			rw.ok, rw.result = true, "refused: other network"
		default:
			rw.result = "FAIL: not refused for the network: " + err.Error()
		}
		c.add(rw)
	}
	refused(intruder, "/dns4/relay1/tcp/4100/p2p/"+c.peerIDs["relay1"])
	refused(intruder, "/dns4/relay2/tcp/4101/ws/p2p/"+c.peerIDs["relay2"])
	refused(intruder, "/dns4/pub1/tcp/4100/p2p/"+c.peerIDs["pub1"])
	refused("pub1", "/ip4/"+ip+"/tcp/4100/p2p/"+iid)
	for _, r := range relays {
		rw := row{step: step, pair: r + " books " + intruder, path: "-", rtt: "-"}
		e, err := c.bookEntry(r, iid)
		switch {
		case err != nil:
			rw.result = "FAIL: " + err.Error()
		case e.State != "rejected" || !strings.Contains(e.Reason, "network mismatch"):
			rw.result = fmt.Sprintf("FAIL: state %s (%s), want rejected for network mismatch", e.State, e.Reason)
		default:
			rw.ok, rw.result = true, "rejected: "+e.Reason
		}
		c.add(rw)
	}
	// A private peer's network holds the relays only: the intruder, on the
	// public network, is out of its reach whatever its network name.
	for _, p := range private {
		rw := row{step: "isolation", pair: p + " -> " + intruder, path: "-", rtt: "-"}
		_, err := c.ov(p, 15*time.Second, "connect", "--timeout", "3s", "/ip4/"+ip+"/tcp/4101/ws/p2p/"+iid)
		switch {
		case err == nil:
			rw.result = "FAIL: reached a node outside its network"
		case strings.Contains(err.Error(), "handshake") || strings.Contains(err.Error(), "network mismatch"):
			rw.result = "FAIL: reached it (refused only by the handshake): " + err.Error()
		default:
			rw.ok, rw.result = true, "unreachable (dial fails)"
		}
		c.add(rw)
	}
	rm()
}

// peerOf returns the peer ID at the end of a /p2p/ multiaddr.
func peerOf(maddr string) string {
	i := strings.LastIndex(maddr, "/p2p/")
	if i < 0 {
		return maddr
	}
	return maddr[i+len("/p2p/"):]
}
