package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/node/api"
	"github.com/overlay-net/overlay/node/tunnel"
)

// exposures is the repeatable --expose NAME=HOST:PORT flag of the node commands.
type exposures []tunnel.Exposure

func (e *exposures) String() string {
	s := make([]string, len(*e))
	for i, x := range *e {
		s[i] = x.Name + "=" + x.Target
	}
	return strings.Join(s, ",")
}

func (e *exposures) Set(v string) error {
	x, err := tunnel.ParseExposure(v)
	if err != nil {
		return err
	}
	*e = append(*e, x)
	return nil
}

// forwardSpec is one --forward LOCAL=PEER/NAME of the node commands.
type forwardSpec struct {
	listen, service string
	peer            peer.ID
}

type forwardSpecs []forwardSpec

func (f *forwardSpecs) String() string {
	s := make([]string, len(*f))
	for i, x := range *f {
		s[i] = fmt.Sprintf("%s=%s/%s", x.listen, x.peer, x.service)
	}
	return strings.Join(s, ",")
}

func (f *forwardSpecs) Set(v string) error {
	listen, rest, ok := strings.Cut(v, "=")
	id, name, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return fmt.Errorf("forward %q: want LOCAL-ADDR=PEER-ID/NAME", v)
	}
	p, err := peer.Decode(id)
	if err != nil {
		return fmt.Errorf("forward %q: bad peer ID: %w", v, err)
	}
	*f = append(*f, forwardSpec{listen: listen, peer: p, service: name})
	return nil
}

// strs is a repeatable string flag.
type strs []string

func (s *strs) String() string     { return strings.Join(*s, ",") }
func (s *strs) Set(v string) error { *s = append(*s, v); return nil }

// parseMixed parses flags that may come after positional arguments too
// (overlay expose ssh 127.0.0.1:22 --allow ID) and returns the positional ones.
func parseMixed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func runExpose(args []string) error {
	var cf clientFlags
	var allow strs
	var list, replace bool
	var remove string
	fs := newFlags("expose", `expose NAME HOST:PORT [--allow PEER-ID ...]
       overlay expose --list [--json]
       overlay expose --remove NAME

Serves the local TCP service at HOST:PORT to members of the network under
NAME (letters, digits, '.', '_', '-'); they reach it with 'overlay forward'.
Only members may open it, and with --allow only the members named. The
node keeps it in DATA/tunnels.json, so it survives a restart. A name
already exposed is refused unless --replace; replacing with a narrower
--allow cuts the open tunnels of members no longer admitted.

HOST may be any host the node reaches, not only itself: an exposed service
makes the node a TCP proxy, for the members it admits, to that host. Start
the node with --expose-targets loopback (or a list of CIDR prefixes) to
keep exposures to hosts you choose.`)
	cf.register(fs, true, 30*time.Second)
	fs.Var(&allow, "allow", "admit only this member (peer ID), repeatable; default: every member")
	fs.BoolVar(&replace, "replace", false, "replace the service NAME if it is exposed already")
	fs.BoolVar(&list, "list", false, "list the exposed services")
	fs.StringVar(&remove, "remove", "", "stop exposing the service NAME (one set by --expose comes back at the next start)")
	pos, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	c, ctx, cancel, err := cf.client()
	if err != nil {
		return err
	}
	defer cancel()
	switch {
	case list && len(pos) == 0 && remove == "":
		es, err := c.Exposures(ctx)
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(es)
		}
		tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tTARGET\tALLOW\tSET BY")
		for _, e := range es {
			who := "every member"
			if len(e.Allow) > 0 {
				who = strings.Join(idStrings(e.Allow), ",")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, e.Target, who, e.Source)
		}
		return tw.Flush()
	case remove != "" && len(pos) == 0 && !list:
		if err := c.Unexpose(ctx, remove); err != nil {
			return err
		}
		fmt.Printf("no longer exposing %s\n", remove)
		return nil
	case len(pos) == 2 && !list && remove == "":
		e, err := c.Expose(ctx, api.ExposeRequest{Name: pos[0], Target: pos[1], Allow: allow, Replace: replace})
		var ae *api.APIError
		if errors.As(err, &ae) && ae.Code == http.StatusConflict {
			return fmt.Errorf("%w (overlay expose --replace %s %s to replace it)", err, pos[0], pos[1])
		}
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(e)
		}
		verb := "exposing"
		if e.Replaced {
			verb = "replaced: now exposing"
		}
		fmt.Printf("%s %s as %q to %s\n", verb, e.Target, e.Name, orEvery(len(e.Allow)))
		return nil
	}
	fs.Usage()
	return errUsage
}

func orEvery(allowed int) string {
	if allowed == 0 {
		return "every member"
	}
	return fmt.Sprintf("%d allowed members", allowed)
}

func idStrings(ids []peer.ID) []string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return s
}

func runForward(args []string) error {
	var cf clientFlags
	var list bool
	var remove string
	fs := newFlags("forward", `forward LOCAL-ADDR PEER NAME
       overlay forward --list [--json]
       overlay forward --remove LOCAL-ADDR

Makes the node listen on LOCAL-ADDR (HOST:PORT, or a bare PORT on
127.0.0.1) and carry each TCP connection to the service NAME that member
PEER (a peer ID, or a member's name in certificate mode) exposes, over whatever path joins the two (direct, relayed,
hole-punched). A refused connection (unknown service, not allowed, service
down, not a member, unreachable) is closed, and the node logs the reason.
Forwards last until the node stops (or use --forward on 'overlay peer').`)
	cf.register(fs, true, 30*time.Second)
	fs.BoolVar(&list, "list", false, "list the forwards, with tunnels open, total, failed and the last failure")
	fs.StringVar(&remove, "remove", "", "stop listening on LOCAL-ADDR (open tunnels stay until they end)")
	pos, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	c, ctx, cancel, err := cf.client()
	if err != nil {
		return err
	}
	defer cancel()
	switch {
	case list && len(pos) == 0 && remove == "":
		fw, err := c.Forwards(ctx)
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(fw)
		}
		tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "LISTEN\tPEER\tSERVICE\tOPEN\tTOTAL\tFAILED\tLAST ERROR")
		for _, f := range fw {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", f.Listen, f.Peer, f.Service, f.Open, f.Total, f.Failed, orDash(oneLine(f.LastError)))
		}
		return tw.Flush()
	case remove != "" && len(pos) == 0 && !list:
		if err := c.Unforward(ctx, remove); err != nil {
			return err
		}
		fmt.Printf("no longer forwarding %s\n", remove)
		return nil
	case len(pos) == 3 && !list && remove == "":
		f, err := c.Forward(ctx, api.ForwardRequest{Listen: pos[0], Peer: pos[1], Service: pos[2]})
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(f)
		}
		fmt.Printf("forwarding %s to %s on %s\n", f.Listen, f.Service, f.Peer)
		return nil
	}
	fs.Usage()
	return errUsage
}

// oneLine folds an error of several lines (libp2p lists each failed
// address on its own) into one, so that it keeps to its table row.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// startForwards sets up the --forward flags of a node command.
func startForwards(t *tunnel.Service, specs forwardSpecs) error {
	var errs []error
	for _, s := range specs {
		if _, err := t.Forward(s.listen, s.peer, s.service); err != nil {
			errs = append(errs, fmt.Errorf("--forward %s=%s/%s: %w", s.listen, s.peer, s.service, err))
		}
	}
	return errors.Join(errs...)
}
