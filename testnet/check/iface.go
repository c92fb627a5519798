// The interface check: real programs over the overlay interface. The
// images hold nothing but the binary, so the host's ping, curl, ssh,
// sshd, iperf3 and python3 run inside the containers' network namespaces
// (`ip netns exec`), as the programs of the member would.

package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node/tun/dns"
)

// The members of the interface check (docker-compose.yml): A and B have a
// kernel TUN (--tun), U the userspace one (--tun userspace) with its SOCKS5
// proxy at socksAddr on its own loopback. B runs the servers.
const (
	ifaceA, ifaceB, ifaceU = "peer1", "peer2", "peer3"

	socksAddr = "127.0.0.1:1080"
	httpPort  = "18080" // python3 -m http.server on B's overlay address
	sshPort   = "12222" // sshd on B's overlay address
	iperfPort = "15201" // iperf3 -s on B's overlay address
	wwwSize   = 1 << 20 // the file fetched with curl
)

// ifaceTools are the host programs the check runs, with their Debian
// packages; one missing skips the check with a notice.
var ifaceTools = []struct{ prog, pkg string }{
	{"ip", "iproute2"}, {"ss", "iproute2"}, {"ping", "iputils-ping"}, {"curl", "curl"},
	{"ssh", "openssh-client"}, {"ssh-keygen", "openssh-client"}, {"sshd", "openssh-server"},
	{"iperf3", "iperf3"}, {"python3", "python3"},
}

// tunStatus is the interface part of `overlay status --json`.
type tunStatus struct {
	Tun *struct {
		Mode string     `json:"mode"`
		Name string     `json:"name"`
		IPv4 netip.Addr `json:"ipv4"`
		IPv6 netip.Addr `json:"ipv6"`
	} `json:"tun"`
}

// findTools finds the programs (sshd must be run by its absolute path,
// and /usr/sbin may be off PATH) and names the missing ones.
func findTools() (map[string]string, []string) {
	paths := map[string]string{}
	var missing []string
	for _, t := range ifaceTools {
		p, err := exec.LookPath(t.prog)
		if err != nil {
			if _, serr := os.Stat("/usr/sbin/" + t.prog); serr == nil {
				p, err = "/usr/sbin/"+t.prog, nil
			}
		}
		if err != nil {
			missing = append(missing, t.prog+" ("+t.pkg+")")
			continue
		}
		paths[t.prog] = p
	}
	return paths, missing
}

// checkInterface runs ping, curl, ssh and iperf3 from A to B over their
// kernel interfaces, by B's name PEERID.overlay (resolved by A's node), and
// curl from U to B through U's SOCKS5 proxy. Every server it starts is
// stopped, and every name it made removed, before it returns.
func (c *checker) checkInterface() {
	const step = "interface"
	if os.Geteuid() != 0 {
		c.notice("interface checks skipped: entering a container's network namespace needs root (uid %d)", os.Geteuid())
		return
	}
	tools, missing := findTools()
	if len(missing) > 0 {
		c.notice("interface checks skipped: missing host programs %s", strings.Join(missing, ", "))
		return
	}
	fail := func(pair, format string, args ...any) {
		c.add(row{step: step, pair: pair, path: "-", rtt: "-", result: "FAIL: " + fmt.Sprintf(format, args...)})
	}

	// The interfaces, as each node reports them.
	want := map[string]string{ifaceA: "kernel", ifaceB: "kernel", ifaceU: "userspace"}
	addrs := map[string]tunStatus{}
	for _, svc := range []string{ifaceA, ifaceB, ifaceU} {
		var s tunStatus
		err := c.ovJSON(svc, &s, 10*time.Second, "status", "--timeout", "5s")
		switch {
		case err != nil:
			fail(svc, "%v", err)
			return
		case s.Tun == nil:
			fail(svc, "no overlay interface in its status (want --tun %s)", want[svc])
			return
		case s.Tun.Mode != want[svc] || !s.Tun.IPv4.IsValid():
			fail(svc, "interface mode %q, IPv4 %v: want %s with an address", s.Tun.Mode, s.Tun.IPv4, want[svc])
			return
		}
		addrs[svc] = s
		name := s.Tun.Name
		if name == "" {
			name = "in the process"
		}
		c.add(row{step: step, pair: svc, path: "-", rtt: "-", ok: true,
			result: fmt.Sprintf("up: %s %s, %s %s", s.Tun.Mode, name, s.Tun.IPv4, s.Tun.IPv6)})
	}
	a4, b4, b6 := addrs[ifaceA].Tun.IPv4, addrs[ifaceB].Tun.IPv4, addrs[ifaceB].Tun.IPv6
	bID := c.peerIDs[ifaceB]
	bName := bID + ".overlay" // the base58 peer ID, as printed
	// iperf3 gets the peer ID's case-insensitive label (a CIDv1 in base36,
	// dns.Label), so both spellings are tried. ssh gets the base58 one:
	// OpenSSH lowercases it, and the node must still find the member.
	bid, err := peer.Decode(bID)
	if err != nil {
		fail(ifaceB, "peer ID %q: %v", bID, err)
		return
	}
	bLabel := dns.Label(bid) + ".overlay"

	// A and U must know B as a member with B's addresses (the message
	// check made them meet; this waits for the peer book).
	for _, svc := range []string{ifaceA, ifaceU} {
		if err := c.waitMemberAddr(svc, bID, b4, 15*time.Second); err != nil {
			fail(svc+" -> "+ifaceB, "%v", err)
			return
		}
	}

	var dir string
	rmDir, err := c.owned(func() (err error) {
		dir, err = os.MkdirTemp("", "overlay-testnet-iface-")
		return err
	}, func() {
		if dir != "" {
			os.RemoveAll(dir)
		}
	})
	defer rmDir()
	if err != nil {
		fail("-", "temp dir: %v", err)
		return
	}
	// Each namespace resolves through its own node's DNS (U's has none a
	// host program can reach: its lookups are refused at once).
	ns := map[string]string{}
	for svc, resolver := range map[string]string{ifaceA: a4.String(), ifaceB: b4.String(), ifaceU: "127.0.0.1"} {
		name, undo, err := c.enterNS(svc, resolver)
		if undo != nil {
			defer undo()
		}
		if err != nil {
			fail(svc, "%v", err)
			return
		}
		ns[svc] = name
	}
	nsA, nsB, nsU := ns[ifaceA], ns[ifaceB], ns[ifaceU]

	c.progress("interface: servers on %s (%s)", ifaceB, b4)
	www := make([]byte, wwwSize)
	rand.Read(www)
	if err := os.WriteFile(filepath.Join(dir, "www.bin"), www, 0o644); err != nil {
		fail("-", "%v", err)
		return
	}
	if err := sshKeys(dir, b4.String()); err != nil {
		fail("-", "%v", err)
		return
	}
	if _, err := os.Stat("/run/sshd"); os.IsNotExist(err) { // sshd's privilege separation directory
		made := false
		rm, _ := c.owned(func() error {
			err := os.Mkdir("/run/sshd", 0o755)
			made = err == nil
			return err
		}, func() {
			if made {
				os.Remove("/run/sshd")
			}
		})
		defer rm()
	}
	servers := []struct {
		name, port string
		args       []string
	}{
		{"http", httpPort, []string{tools["python3"], "-m", "http.server", httpPort, "--bind", b4.String(), "--directory", dir}},
		{"sshd", sshPort, []string{tools["sshd"], "-D", "-e", "-f", filepath.Join(dir, "sshd_config")}},
		{"iperf3", iperfPort, []string{tools["iperf3"], "-s", "-B", b4.String(), "-p", iperfPort}},
	}
	for _, s := range servers {
		srv, stop, err := c.startIn(nsB, dir, s.name, s.args...)
		if err == nil {
			defer stop()
			err = srv.waitListening(nsB, s.port, 30*time.Second)
		}
		if err != nil {
			fail(ifaceB, "%v", err)
			return
		}
	}

	path := "?"
	if e, err := c.bookEntry(ifaceA, bID); err == nil {
		path = e.Path
	}
	pair := ifaceA + " -> " + ifaceB
	add := func(rtt string, err error, ok string) {
		rw := row{step: step, pair: pair, path: path, rtt: rtt}
		if err != nil {
			rw.result = "FAIL: " + err.Error()
		} else {
			rw.ok, rw.result = true, ok
		}
		c.add(rw)
	}

	c.progress("interface: ping, curl, ssh, iperf3 %s -> %s", ifaceA, ifaceB)
	rtt, err := pingByName(nsA, bName, "-4")
	add(rtt, err, "ping -c 3 PEERID.overlay (A record from "+ifaceA+"'s DNS): 3 of 3 answered")
	rtt, err = pingByName(nsA, b6.String(), "-6")
	add(rtt, err, "ping -6 -c 3 "+b6.String()+": 3 of 3 answered")

	took, err := curlFile(nsA, dir, "got-a.bin", www, "-4", "http://"+bName+":"+httpPort+"/www.bin")
	add("-", err, fmt.Sprintf("curl 1 MiB by name from python3 http.server on %s: identical (%s)", b4, took))

	add("-", sshCommand(nsA, tools["ssh"], dir, bName, a4), "ssh to PEERID.overlay (base58, which ssh lowercases) runs a command; sshd sees it come from "+a4.String()+" ("+ifaceA+"'s overlay address)")

	mbps, err := iperf(nsA, bLabel)
	add("-", err, fmt.Sprintf("iperf3 -t 3 to LABEL.overlay: %.0f Mbit/s received (loaded machine)", mbps))

	c.progress("interface: curl %s -> %s through %s's SOCKS5 proxy", ifaceU, ifaceB, ifaceU)
	pair = ifaceU + " -> " + ifaceB
	path = "?"
	if e, err := c.bookEntry(ifaceU, bID); err == nil {
		path = e.Path
	}
	took, err = curlFile(nsU, dir, "got-u.bin", www, "--socks5-hostname", socksAddr, "http://"+bName+":"+httpPort+"/www.bin")
	add("-", err, fmt.Sprintf("curl --socks5-hostname %s (userspace) 1 MiB by name: identical (%s)", socksAddr, took))
}

// notice reports a skipped check on stderr at once and under the summary.
func (c *checker) notice(format string, args ...any) {
	msg := "NOTICE: " + fmt.Sprintf(format, args...)
	c.progress("%s", msg)
	c.note("%s", msg)
}

// waitMemberAddr waits until svc's peer book lists id as a member with
// the IPv4 overlay address v4.
func (c *checker) waitMemberAddr(svc, id string, v4 netip.Addr, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var ps []struct {
			PeerID string     `json:"peer_id"`
			State  string     `json:"state"`
			IPv4   netip.Addr `json:"ipv4"`
		}
		err := c.ovJSON(svc, &ps, 10*time.Second, "peers", "--timeout", "5s")
		if err == nil {
			err = fmt.Errorf("%s not in %s's peer book", c.name(id), svc)
			for _, p := range ps {
				if p.PeerID == id {
					if p.State == "member" && p.IPv4 == v4 {
						return nil
					}
					err = fmt.Errorf("%s's peer book: %s is %s with IPv4 %v, want a member with %s", svc, c.name(id), p.State, p.IPv4, v4)
				}
			}
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(300 * time.Millisecond)
	}
}

var (
	pingRecv = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
	pingAvg  = regexp.MustCompile(`= [0-9.]+/([0-9.]+)/`)
)

// pingByName pings target three times from ns and returns the average
// round trip; all three must be answered.
func pingByName(ns, target, family string) (string, error) {
	out, err := inNS(ns, 30*time.Second, "ping", family, "-c", "3", "-i", "0.2", "-W", "5", target)
	sent, got, avg, ok := parsePing(out)
	switch {
	case !ok && err != nil:
		return "-", fmt.Errorf("ping %s: %w", target, err)
	case !ok:
		return "-", fmt.Errorf("ping %s: no summary in %q", target, out)
	case sent != 3 || got != 3:
		return "-", fmt.Errorf("ping %s: %d of %d answered", target, got, sent)
	}
	return avg, nil
}

// parsePing reads iputils ping's summary: packets sent and received, and
// the average round trip ("-" if none was answered).
func parsePing(out string) (sent, got int, avg string, ok bool) {
	m := pingRecv.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, "", false
	}
	sent, _ = strconv.Atoi(m[1])
	got, _ = strconv.Atoi(m[2])
	avg = "-"
	if a := pingAvg.FindStringSubmatch(out); a != nil {
		avg = a[1] + "ms"
	}
	return sent, got, avg, true
}

// curlFile fetches a URL from ns with the given curl arguments into
// DIR/NAME and checks it holds want.
func curlFile(ns, dir, name string, want []byte, args ...string) (string, error) {
	dst := filepath.Join(dir, name)
	start := time.Now()
	full := append([]string{"curl", "-sS", "-f", "--max-time", "30", "-o", dst}, args...)
	if _, err := inNS(ns, 40*time.Second, full...); err != nil {
		return "", fmt.Errorf("curl %s: %w", args[len(args)-1], err)
	}
	took := time.Since(start).Round(10 * time.Millisecond).String()
	got, err := os.ReadFile(dst)
	if err != nil {
		return took, err
	}
	if string(got) != string(want) {
		return took, fmt.Errorf("curl %s: got %d bytes, not the %d served", args[len(args)-1], len(got), len(want))
	}
	return took, nil
}

// sshKeys writes a throwaway host key, a client key and an sshd_config
// that serves sshPort on addr, accepting the client key only.
func sshKeys(dir, addr string) error {
	for _, k := range []string{"host_key", "client_key"} {
		if _, err := runCmd(30*time.Second, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)); err != nil {
			return fmt.Errorf("ssh-keygen %s: %w", k, err)
		}
	}
	conf := strings.Join([]string{
		"Port " + sshPort,
		"ListenAddress " + addr,
		"HostKey " + filepath.Join(dir, "host_key"),
		"AuthorizedKeysFile " + filepath.Join(dir, "client_key.pub"),
		"PidFile none",
		"UsePAM no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"StrictModes no",
		"UseDNS no",
		"",
	}, "\n")
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o600); err != nil {
		return fmt.Errorf("sshd_config: %w", err)
	}
	return nil
}

// sshCommand logs in to host over ssh from ns and runs a command that
// prints the client address sshd saw, which must be from.
func sshCommand(ns, ssh, dir, host string, from netip.Addr) error {
	out, err := inNS(ns, 40*time.Second, ssh, "-4", "-F", "/dev/null", "-i", filepath.Join(dir, "client_key"),
		"-p", sshPort, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR",
		"root@"+host, `echo "overlay-ssh $SSH_CLIENT"`)
	if err != nil {
		return fmt.Errorf("ssh %s: %w", host, err)
	}
	f := strings.Fields(out)
	if len(f) < 2 || f[0] != "overlay-ssh" || f[1] != from.String() {
		return fmt.Errorf("ssh %s: the command printed %q, want the client address %s", host, strings.TrimSpace(out), from)
	}
	return nil
}

// iperf runs a 3-second iperf3 test from ns to host and returns the
// received rate in Mbit/s.
func iperf(ns, host string) (float64, error) {
	out, err := inNS(ns, 40*time.Second, "iperf3", "-4", "-c", host, "-p", iperfPort, "-t", "3", "-J")
	var res struct {
		Error string `json:"error"`
		End   struct {
			Received struct {
				Bytes int64   `json:"bytes"`
				BPS   float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
		if err != nil {
			return 0, fmt.Errorf("iperf3 -c %s: %w", host, err)
		}
		return 0, fmt.Errorf("iperf3 -c %s: bad JSON: %w", host, jerr)
	}
	switch {
	case res.Error != "":
		return 0, fmt.Errorf("iperf3 -c %s: %s", host, res.Error)
	case err != nil:
		return 0, fmt.Errorf("iperf3 -c %s: %w", host, err)
	case res.End.Received.Bytes <= 0:
		return 0, fmt.Errorf("iperf3 -c %s: nothing received", host)
	}
	return res.End.Received.BPS / 1e6, nil
}
