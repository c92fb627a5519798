package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/overlay-net/overlay/internal/flagconf"
)

// runConfig is `overlay config check FILE`: the settings a node would run
// with, given FILE and this environment, and where each comes from.
func runConfig(args []string) error {
	fs := newFlags("config", "config check [--role relay|peer] FILE\n\n"+
		"Prints the settings a node would run with, from FILE, the OVERLAY_* variables\n"+
		"and the defaults, and where each value comes from. Precedence: flags, then\n"+
		"OVERLAY_* variables, then the file, then defaults. Exits 1 naming the key and\n"+
		"line of an unknown key or a bad value. The role is peer when the file sets\n"+
		"relay, else relay, unless --role says.")
	role := fs.String("role", "", "check the file for this node command: relay or peer (default: guessed)")
	if len(args) > 0 && args[0] == "check" {
		args = args[1:]
	} else if len(args) == 0 || (args[0] != "-h" && args[0] != "--help") {
		fs.Usage()
		return errUsage
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	file := fs.Arg(0)
	if *role == "" {
		*role = guessRole(file)
	}
	if *role != "relay" && *role != "peer" {
		return fmt.Errorf("bad --role %q (relay or peer)", *role)
	}
	_, dfs := newDaemon(*role)
	if err := dfs.Parse(nil); err != nil {
		return err
	}
	l := layers(dfs)
	l.File = file
	src, err := l.Apply(dfs)
	if err != nil {
		return fmt.Errorf("%s is not a valid %s configuration:\n%w", file, *role, err)
	}
	fmt.Printf("overlay %s with %s:\n", *role, file)
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tFROM")
	dfs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		v := f.Value.String()
		if v == "" {
			v = `""`
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Name, v, src[f.Name])
	})
	return tw.Flush()
}

// guessRole says peer for a file that names relays, else relay.
func guessRole(file string) string {
	_, fs := newPeer()
	_ = fs.Parse(nil)
	src, _ := flagconf.Layers{Prefix: envPrefix, File: file, Getenv: func(string) string { return "" }}.Apply(fs)
	if strings.HasPrefix(src["relay"].Kind, flagconf.FromFile) {
		return "peer"
	}
	return "relay"
}
