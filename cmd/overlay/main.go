// Command overlay runs an overlay node (relay or peer) and talks to a
// running one through its control API.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// command is one of overlay's commands: its entry point, which parses its
// own flags (through parse), and the usage line that lists it.
type command struct {
	name     string
	synopsis string // after "overlay "
	summary  string
	run      func(args []string) error
	// subs are the words the command takes first (config check), for
	// completion.
	subs []string
}

// group is a section of the usage.
type group struct {
	title string
	cmds  []command
}

// commands in the order usage lists them. It is set in init: completion
// and the check of OVERLAY_* names read it from inside commands.
var commands []group

func init() {
	commands = []group{
		{"Run a node:", []command{
			{name: "relay", synopsis: "relay [flags]", summary: "public node: relays for others (TCP and WebSocket)", run: runRelay},
			{name: "peer", synopsis: "peer --relay MADDR [flags]", summary: "private node: reachable through its relays", run: runPeer},
			{name: "id", synopsis: "id --key FILE", summary: "print the peer ID of a key (created if missing)", run: runID},
			{name: "version", synopsis: "version [--json]", summary: "module version, commit and Go version of this binary", run: runVersion},
			{name: "config", synopsis: "config check FILE", summary: "the settings FILE gives a node, and where each comes from", run: runConfig, subs: []string{"check"}},
			{name: "psk", synopsis: "psk new FILE", summary: "a new pre-shared key for a private network (--psk FILE)", run: runPSK, subs: []string{"new"}},
			{name: "ca", synopsis: "ca COMMAND", summary: "a network CA: member certificates, revocations, policy", run: runCA, subs: caSubs},
			{name: "completion", synopsis: "completion bash|zsh", summary: "a shell completion script (source <(overlay completion bash))", run: runCompletion, subs: []string{"bash", "zsh"}},
		}},
		{"Talk to a running node (through its control API, --api):", []command{
			{name: "status", synopsis: "status [--json]", summary: "identity, addresses, reservations", run: runStatus},
			{name: "peers", synopsis: "peers [--json]", summary: "the peer book", run: runPeers},
			{name: "netcheck", synopsis: "netcheck [--json]", summary: "this host's NAT, measured against the relays: UDP, mapping, RTTs", run: runNetcheck},
			{name: "connect", synopsis: "connect TARGET", summary: "reach a peer by multiaddr or peer ID", run: runConnect},
			{name: "health", synopsis: "health", summary: "exit 0 if the node is up (and a peer holds a reservation)", run: runHealth},
			{name: "send", synopsis: "send PEER TEXT", summary: "send a message; exit 0 once acknowledged (--stdin, --soak)", run: runSend},
			{name: "inbox", synopsis: "inbox [--json]", summary: "recently received messages", run: runInbox},
			{name: "pub", synopsis: "pub TOPIC TEXT", summary: "publish to every member following a topic (--stdin)", run: runPub},
			{name: "sub", synopsis: "sub TOPIC", summary: "follow a topic, printing messages as they arrive (--json)", run: runSub},
			{name: "topics", synopsis: "topics [--json]", summary: "joined topics: peers, mesh, followers, counts", run: runTopics},
			{name: "ping", synopsis: "ping TARGET", summary: "/ipfs/ping/1.0.0 round-trip times to any libp2p peer", run: runPing},
			{name: "perf", synopsis: "perf TARGET", summary: "throughput with /perf/1.0.0 (--upload, --download bytes)", run: runPerf},
			{name: "expose", synopsis: "expose NAME HOST:PORT", summary: "serve a local TCP service to members (--allow, --list, --remove)", run: runExpose},
			{name: "forward", synopsis: "forward LOCAL-ADDR PEER NAME", summary: "carry local TCP connections to a member's service (--list, --remove)", run: runForward},
		}},
	}
}

// lookupCommand returns the command called name.
func lookupCommand(name string) (command, bool) {
	for _, g := range commands {
		for _, c := range g.cmds {
			if c.name == name {
				return c, true
			}
		}
	}
	return command{}, false
}

// allCommands returns every command in usage order.
func allCommands() []command {
	var out []command
	for _, g := range commands {
		out = append(out, g.cmds...)
	}
	return out
}

func usage() string {
	var b strings.Builder
	b.WriteString("overlay: join nodes behind NATs, firewalls and proxies into one libp2p network.\n")
	for _, g := range commands {
		fmt.Fprintf(&b, "\n%s\n", g.title)
		for _, c := range g.cmds {
			fmt.Fprintf(&b, "  %-37s %s\n", "overlay "+c.synopsis, c.summary)
		}
	}
	b.WriteString(`
Flags may come before or after a command's other arguments ('--' ends them).
Run 'overlay help COMMAND' for a command's flags. Every flag can also be
set as OVERLAY_<FLAG> (--max-circuits: OVERLAY_MAX_CIRCUITS) and, for relay
and peer, in a YAML file (--config FILE); flags win over variables, variables
over the file, the file over defaults.
`)
	return b.String()
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage())
		os.Exit(2)
	}
	name, args := os.Args[1], os.Args[2:]
	if name == "help" && len(args) == 1 {
		name, args = args[0], []string{"--help"} // overlay help ping
	}
	if name == "-h" || name == "--help" || name == "help" {
		fmt.Print(usage())
		return
	}
	cmd, ok := lookupCommand(name)
	if !ok {
		fmt.Fprintf(os.Stderr, "overlay: unknown command %q\n", name)
		if s := suggest(name); s != "" {
			fmt.Fprintf(os.Stderr, "did you mean '%s'?\n", s)
		}
		fmt.Fprintln(os.Stderr, "Run 'overlay help' for the commands.")
		os.Exit(2)
	}
	err := cmd.run(args)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "overlay %s: %v\n", name, err)
		os.Exit(1)
	}
}

// suggest returns the command nearest to name, or "" when none is near:
// a prefix of a command, or within a third of its length in edits.
func suggest(name string) string {
	best, bestD := "", -1
	for _, c := range allCommands() {
		if strings.HasPrefix(c.name, name) && len(name) >= 2 {
			return c.name
		}
		d := editDistance(strings.ToLower(name), c.name)
		if d <= max(1, len(c.name)/3) && (bestD < 0 || d < bestD) {
			best, bestD = c.name, d
		}
	}
	return best
}

// editDistance is the edit distance of a and b in bytes, counting an
// insertion, a deletion, a change or a swap of two neighbours as one edit
// (optimal string alignment).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// flagsOf returns the flag set of the command name, as the command itself
// defines it, without running the command.
func flagsOf(c command) *flag.FlagSet {
	var fs *flag.FlagSet
	capture = func(f *flag.FlagSet) { fs = f }
	defer func() { capture = nil }()
	_ = c.run(nil)
	return fs
}
