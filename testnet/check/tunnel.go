// The tunnel check: a port of one private peer forwarded to a service
// another exposes, through the relays.

package main

import (
	"fmt"
	"time"
)

// tunnelPort is where peer1 forwards to peer2's service, on peer1's loopback.
const tunnelPort = "127.0.0.1:7410"

// checkTunnel has peer1 forward tunnelPort to the service "api" of peer2,
// which docker-compose.yml exposes with --expose: peer2's own control API.
// The check then asks for a status at tunnelPort inside peer1 with
// `overlay status`: peer2's peer ID in the answer proves the bytes crossed
// the tunnel (the images hold no other client).
func (c *checker) checkTunnel(from, to string, timeout time.Duration) {
	rw := row{step: "tunnel", pair: from + " -> " + to + "/api", path: "-", rtt: "-"}
	defer func() { c.add(rw) }()
	if _, err := c.ov(from, 15*time.Second, "forward", "--timeout", "10s", tunnelPort, c.peerIDs[to], "api"); err != nil {
		rw.result = "FAIL: " + err.Error()
		return
	}
	defer c.ov(from, 15*time.Second, "forward", "--remove", tunnelPort)
	start := time.Now()
	deadline := start.Add(timeout)
	var err error
	for {
		var s status
		if err = c.ovJSON(from, &s, 15*time.Second, "status", "--timeout", "10s", "--api", tunnelPort); err == nil && s.PeerID != c.peerIDs[to] {
			err = fmt.Errorf("status through the tunnel names %s, want %s", c.name(s.PeerID), to)
		}
		if err == nil || time.Now().After(deadline) {
			break
		}
		c.progress("tunnel %s -> %s: %v", from, to, err)
		time.Sleep(500 * time.Millisecond)
	}
	took := time.Since(start)
	if err != nil {
		rw.result = fmt.Sprintf("FAIL after %s: %v", took.Round(100*time.Millisecond), err)
		return
	}
	if p, err := c.bookEntry(from, c.peerIDs[to]); err == nil {
		rw.path = p.Path
	}
	rw.ok = true
	rw.result = fmt.Sprintf("status of %s fetched through a forward of %s (after %s)", to, from, took.Round(100*time.Millisecond))
}
