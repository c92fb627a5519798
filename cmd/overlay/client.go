package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/overlay-net/overlay/node"
	"github.com/overlay-net/overlay/node/api"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/node/certs"
	"github.com/overlay-net/overlay/node/identity"
	"github.com/overlay-net/overlay/node/tun"
)

// clientFlags are the flags of commands that talk to a running node.
type clientFlags struct {
	api, token string
	json       bool
	timeout    time.Duration
}

func (c *clientFlags) register(fs *flag.FlagSet, withJSON bool, timeout time.Duration) {
	fs.StringVar(&c.api, "api", "", "control API address of the node ($OVERLAY_API; default: whichever of "+api.DefaultRelayAddr+" (relay) and "+api.DefaultPeerAddr+" (peer) answers)")
	fs.StringVar(&c.token, "api-token", "", "file holding the node's API token (its --api-token), sent with every request ($OVERLAY_API_TOKEN)")
	fs.DurationVar(&c.timeout, "timeout", timeout, "give up after this long")
	if withJSON {
		fs.BoolVar(&c.json, "json", false, "print JSON for programs")
	}
}

// client returns a client of the node's API and a context bounded by
// --timeout. It fails only when the token file cannot be read.
func (c *clientFlags) client() (*api.Client, context.Context, context.CancelFunc, error) {
	cl := api.NewClient(c.api)
	if c.token != "" {
		tok, err := readToken(c.token)
		if err != nil {
			return nil, nil, nil, err
		}
		cl.WithToken(tok)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	return cl, ctx, cancel, nil
}

// fetch makes one request of the node's API with cf's client and deadline,
// then prints the answer: as JSON with --json, else through text.
func fetch[T any](cf *clientFlags, req func(context.Context, *api.Client) (T, error), text func(T) error) error {
	c, ctx, cancel, err := cf.client()
	if err != nil {
		return err
	}
	defer cancel()
	v, err := req(ctx, c)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(v)
	}
	return text(v)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runID(args []string) error {
	fs := newFlags("id", "id --key FILE")
	key := fs.String("key", "", "identity key file; created (mode 0600) if missing")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *key == "" {
		fmt.Fprintln(fs.Output(), "overlay id: --key is required")
		fs.Usage()
		return errUsage
	}
	k, err := identity.LoadOrCreate(*key)
	if err != nil {
		return err
	}
	id, err := peerIDOf(k)
	if err != nil {
		return err
	}
	fmt.Println(id)
	return nil
}

func runStatus(args []string) error {
	var cf clientFlags
	fs := newFlags("status", "status [--json] [--api ADDR]")
	cf.register(fs, true, 30*time.Second)
	if err := parse(fs, args); err != nil {
		return err
	}
	return fetch(&cf, func(ctx context.Context, c *api.Client) (node.Status, error) {
		return c.Status(ctx)
	}, func(s node.Status) error {
		fmt.Printf("peer ID:  %s\nrole:     %s\nnetwork:  %s\nagent:    %s\nbuild:    %s\nconnected peers: %d\n",
			s.PeerID, s.Role, s.Network, s.Agent, s.Build, s.Peers)
		printList("direct addresses", s.Addrs.Direct)
		printList("relayed addresses", s.Addrs.Relayed)
		if r := s.Reachability; r.Why != "" {
			fmt.Printf("reachability: %s (by %s)\n", r.State, r.Why)
		} else {
			fmt.Printf("reachability: %s\n", r.State)
		}
		printList("observed public addresses", s.Reachability.Observed)
		if hp := s.HolePunch; hp.Attempts > 0 {
			fmt.Printf("hole punches: %d attempts, %d succeeded, %d failed\n", hp.Attempts, hp.Succeeded, hp.Failed)
		}
		if sp := s.HolePunch.Spray; sp.Attempts > 0 {
			fmt.Printf("port sprays: %d attempts, %d refused, %d direct, %d packets, %d probes\n",
				sp.Attempts, sp.Refused, sp.Direct, sp.Packets, sp.Probes)
		}
		if r := s.NetCheck; r != nil && s.Role == "private" {
			fmt.Printf("NAT (netcheck %s): %s, UDP %s, public address %s, preferred relay %s\n",
				ago(r.At), r.Class(), yesNo(r.UDP), orDash(r.Mapped), orDash(r.Preferred))
		}
		if s.Role == "private" {
			printRelays(s)
		}
		if ts := s.Trust; ts != nil {
			printTrust(*ts)
		}
		if sv := s.Service; sv != nil {
			fmt.Printf("relay service: %d reservations held (of %d), %d circuits open, %s relayed\n",
				sv.Reservations, s.MaxReservations(), sv.Circuits, humanBytes(sv.RelayedBytes))
			if sv.StrangerReservations > 0 {
				fmt.Printf("open relay: %d reservations held by non-members (stock limits)\n", sv.StrangerReservations)
			}
			printRefusals(sv.Refusals)
		}
		printCertificate(s.Certificate)
		printTUN(s.TUN)
		return nil
	})
}

// printTUN shows the overlay interface: addresses, traffic and drops.
func printTUN(t *tun.Status) {
	if t == nil {
		return
	}
	name := t.Name
	if name == "" {
		name = t.Mode
	}
	fmt.Printf("interface: %s %s %s mtu %d; %d packets out (%s), %d in (%s)\n", name, t.IPv4, t.IPv6, t.MTU,
		t.Stats.PacketsOut, humanBytes(int64(t.Stats.BytesOut)), t.Stats.PacketsIn, humanBytes(int64(t.Stats.BytesIn)))
	if len(t.Stats.Drops) > 0 {
		keys := slices.Sorted(maps.Keys(t.Stats.Drops))
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", k, t.Stats.Drops[k]))
		}
		fmt.Printf("interface drops: %s\n", strings.Join(parts, ", "))
	}
}

// printCertificate shows this node's certificate (certificate mode) and
// the certificate refusals counted.
func printCertificate(c *certs.Status) {
	if c == nil {
		return
	}
	groups := ""
	if len(c.Groups) > 0 {
		groups = ", groups " + strings.Join(c.Groups, ",")
	}
	fmt.Printf("certificate: %s%s, serial %s, CA %s, expires %s (in %s)\n", c.Name, groups, c.Serial, c.CA,
		c.NotAfter.Local().Format(time.DateTime), (time.Duration(c.ExpiresIn) * time.Second).String())
	if c.Warning != "" {
		fmt.Printf("certificate warning: %s\n", c.Warning)
	}
	if len(c.Refusals) > 0 {
		fmt.Println("certificate refusals:")
		printRefusals(c.Refusals)
	}
}

// printRefusals lists what limits refused, by limit, most first.
func printRefusals(refused map[string]int64) {
	if len(refused) == 0 {
		fmt.Println("refusals: none")
		return
	}
	limits := slices.Collect(maps.Keys(refused))
	slices.SortFunc(limits, func(a, b string) int { return cmp.Compare(refused[b], refused[a]) })
	fmt.Println("refusals by limit:")
	for _, l := range limits {
		fmt.Printf("  %-32s %d\n", l, refused[l])
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// printRelays shows each relay's standing: when a reservation lapses or
// when the next attempt is due, and why it is not held.
func printRelays(s node.Status) {
	fmt.Printf("relays (%d of %d reserved):\n", len(s.Reservations), s.RelaysConfigured)
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  RELAY\tSTATE\tWHEN\tREASON")
	for _, r := range s.Relays {
		when := "-"
		switch {
		case r.Expires != nil:
			when = "expires in " + time.Until(*r.Expires).Round(time.Second).String()
		case r.NextRetry != nil:
			when = "retry in " + max(0, time.Until(*r.NextRetry)).Round(100*time.Millisecond).String()
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", r.Relay, r.State, when, orDash(r.Reason))
	}
	tw.Flush()
}

func printList(title string, items []string) {
	fmt.Printf("%s (%d):\n", title, len(items))
	for _, it := range items {
		fmt.Printf("  %s\n", it)
	}
}

func runPeers(args []string) error {
	var cf clientFlags
	fs := newFlags("peers", "peers [--json] [--api ADDR]")
	cf.register(fs, true, 30*time.Second)
	if err := parse(fs, args); err != nil {
		return err
	}
	return fetch(&cf, func(ctx context.Context, c *api.Client) ([]api.Peer, error) {
		return c.Peers(ctx)
	}, func(ps []api.Peer) error {
		tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
		tunCols := false
		for _, p := range ps {
			tunCols = tunCols || p.IPv4 != "" || p.IPv6 != ""
		}
		head := "PEER ID\tNAME\tGROUPS\tROLE\tSTATE\tPATH\tDIRECT\tRELAYED\tLAST SEEN\tREASON\tWHY RELAYED"
		if tunCols {
			head += "\tIPV4\tIPV6"
		}
		fmt.Fprintln(tw, head)
		var whys []string
		for _, p := range ps {
			why := "-"
			if w := p.Why; w != nil {
				why = string(w.Reason)
				whys = append(whys, fmt.Sprintf("%s is relayed: %s: %s", p.ID, w.Reason, w.Detail))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s", p.ID, orDash(p.Name), orDash(strings.Join(p.Groups, ",")),
				orDash(string(p.Role)), p.State, p.Path,
				len(p.Direct), len(p.Relayed), p.LastSeen.Local().Format(time.DateTime), orDash(p.Reason), why)
			if tunCols {
				fmt.Fprintf(tw, "\t%s\t%s", orDash(p.IPv4), orDash(p.IPv6))
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(whys) > 0 {
			fmt.Println()
		}
		for _, w := range whys {
			fmt.Println(w)
		}
		return nil
	})
}

// ago says how long ago t was, for people.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func runConnect(args []string) error {
	var cf clientFlags
	fs := newFlags("connect", "connect [--json] [--api ADDR] TARGET\n\nTARGET is a multiaddr ending in /p2p/<peer ID>, a peer ID, or a member's\nname (certificate mode): with no known address the node looks it up in the\nDHT, then tries the peer's relayed address through each of its own relays.")
	cf.register(fs, true, 30*time.Second)
	if err := parseArgs(fs, args, 1); err != nil {
		return err
	}
	return fetch(&cf, func(ctx context.Context, c *api.Client) (book.PeerInfo, error) {
		return c.Connect(ctx, fs.Arg(0), cf.timeout)
	}, func(p book.PeerInfo) error {
		fmt.Printf("connected to %s: %s, %s, path %s\n", p.ID, p.Role, p.State, p.Path)
		return nil
	})
}

func runHealth(args []string) error {
	var cf clientFlags
	fs := newFlags("health", "health [--api ADDR]\n\nExits 0 when the node is up and, for a private node, holds a reservation.")
	cf.register(fs, false, 5*time.Second)
	if err := parse(fs, args); err != nil {
		return err
	}
	c, ctx, cancel, err := cf.client()
	if err != nil {
		return err
	}
	defer cancel()
	h, err := c.Health(ctx)
	if err != nil {
		return err
	}
	if !h.OK {
		return fmt.Errorf("unhealthy: %s", h.Reason)
	}
	fmt.Println("ok")
	for _, w := range h.Warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	return nil
}
