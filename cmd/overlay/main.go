// Command overlay runs an overlay node (relay or peer) and talks to a
// running one through its control API.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `overlay: join nodes behind NATs, firewalls and proxies into one libp2p network.

Run a node:
  overlay relay [flags]                 public node: relays for others (TCP and WebSocket)
  overlay peer --relay MADDR [flags]    private node: reachable through its relays
  overlay id --key FILE                 print the peer ID of a key (created if missing)
  overlay version [--json]              module version, commit and Go version of this binary
  overlay config check FILE             the settings FILE gives a node, and where each comes from
  overlay psk new FILE                  a new pre-shared key for a private network (--psk FILE)

Talk to a running node (through its control API, --api):
  overlay status [--json]               identity, addresses, reservations
  overlay peers [--json]                the peer book
  overlay connect TARGET                reach a peer by multiaddr or peer ID
  overlay health                        exit 0 if the node is up (and a peer holds a reservation)
  overlay send PEER-ID TEXT             send a message; exit 0 once acknowledged (--stdin, --soak)
  overlay inbox [--json]                recently received messages
  overlay ping TARGET                   /ipfs/ping/1.0.0 round-trip times to any libp2p peer
  overlay perf TARGET                   throughput with /perf/1.0.0 (--upload, --download bytes)
  overlay expose NAME HOST:PORT         serve a local TCP service to members (--allow, --list, --remove)
  overlay forward LOCAL-ADDR PEER NAME  carry local TCP connections to a member's service (--list, --remove)

Run 'overlay COMMAND --help' for a command's flags. Every flag can also be
set as OVERLAY_<FLAG> (--max-circuits: OVERLAY_MAX_CIRCUITS) and, for relay
and peer, in a YAML file (--config FILE); flags win over variables, variables
over the file, the file over defaults.
`

// commands maps a command name to its entry point; each parses its own flags.
var commands = map[string]func(args []string) error{
	"relay":   runRelay,
	"peer":    runPeer,
	"id":      runID,
	"status":  runStatus,
	"peers":   runPeers,
	"connect": runConnect,
	"health":  runHealth,
	"send":    runSend,
	"inbox":   runInbox,
	"ping":    runPing,
	"perf":    runPerf,
	"expose":  runExpose,
	"forward": runForward,
	"version": runVersion,
	"config":  runConfig,
	"psk":     runPSK,
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "-h" || name == "--help" || name == "help" {
		fmt.Print(usage)
		return
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "overlay: unknown command %q\n\n%s", name, usage)
		os.Exit(2)
	}
	err := cmd(os.Args[2:])
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
