package main

import (
	"fmt"
	"os/exec"
	"strings"
)

// A lab of source addresses for the load: one network namespace per load
// process, each with its own IP on a bridge in the root namespace, where
// the relay listens. Real peers come from many IPs; with all of them on
// 127.0.0.1, libp2p's relay spends most of its CPU on its per-IP
// bookkeeping (a linear scan of the IP's reservations on every reserve,
// renewal and disconnect), which no deployment with the default per-IP cap
// (256) pays. The addresses (10.99.0.0/16) live only on this bridge and
// in these namespaces.
const (
	labBridge = "ovcapbr0"
	labPrefix = "ovcap"
	relayIP   = "10.99.0.1"
)

// labUp builds the bridge and n namespaces, removing leftovers of an
// earlier run first. It needs root.
func labUp(n int) error {
	labDown(n)
	cmds := [][]string{
		{"ip", "link", "add", labBridge, "type", "bridge"},
		{"ip", "addr", "add", relayIP + "/16", "dev", labBridge},
		{"ip", "link", "set", labBridge, "up"},
	}
	for i := range n {
		ns, host, peer := labNS(i), fmt.Sprintf("%sh%d", labPrefix, i), fmt.Sprintf("%sp%d", labPrefix, i)
		cmds = append(cmds,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "link", "add", host, "type", "veth", "peer", "name", peer},
			[]string{"ip", "link", "set", peer, "netns", ns},
			[]string{"ip", "link", "set", host, "master", labBridge, "up"},
			[]string{"ip", "-n", ns, "addr", "add", fmt.Sprintf("10.99.%d.2/16", i+1), "dev", peer},
			[]string{"ip", "-n", ns, "link", "set", peer, "up"},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
		)
	}
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			labDown(n)
			return fmt.Errorf("%s: %v: %s (the -netns lab needs root)", strings.Join(c, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// labDown removes whatever labUp made; errors mean it was not there.
func labDown(n int) {
	for i := range max(n, 64) {
		_ = exec.Command("ip", "netns", "del", labNS(i)).Run()
	}
	_ = exec.Command("ip", "link", "del", labBridge).Run()
}

func labNS(i int) string { return fmt.Sprintf("%s%d", labPrefix, i) }
