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
		"OVERLAY_* variables, then the file, then defaults. It runs the checks the node\n"+
		"runs at start, and exits 1 naming the file, line and key (or the variable) of\n"+
		"each value they refuse, of an unknown key, and of an OVERLAY_* variable no\n"+
		"command reads. The role is peer when the file sets relay, else relay, unless\n"+
		"--role says.")
	role := fs.String("role", "", "check the file for this node command: relay or peer (default: guessed)")
	if err := parseArgs(fs, args, 2); err != nil {
		return err
	}
	if fs.Arg(0) != "check" {
		fmt.Fprintf(fs.Output(), "overlay config: unknown subcommand %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	file := fs.Arg(1)
	if *role == "" {
		*role = guessRole(file)
	}
	if *role != "relay" && *role != "peer" {
		return fmt.Errorf("bad --role %q (relay or peer)", *role)
	}
	envErr := checkEnv(os.Environ())
	_, dfs, src, err := loadChecked(*role, nil, file)
	if err != nil || envErr != nil {
		return fmt.Errorf("%s is not a valid %s configuration:\n%w", file, *role, joinErrs(envErr, err))
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

// joinErrs joins the errors that are not nil, one a line.
func joinErrs(errs ...error) error {
	var lines []string
	for _, e := range errs {
		if e != nil {
			lines = append(lines, e.Error())
		}
	}
	return fmt.Errorf("%s", strings.Join(lines, "\n"))
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
