package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/overlay-net/overlay/internal/flagconf"

	ma "github.com/multiformats/go-multiaddr"
)

// errUsage means a usage message was printed already.
var errUsage = errors.New("usage")

// maddrs is a repeatable multiaddr flag.
type maddrs []ma.Multiaddr

func (m *maddrs) String() string {
	s := make([]string, len(*m))
	for i, a := range *m {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// Repeatable tells flagconf to take a list from the environment or a file.
func (m *maddrs) Repeatable() bool { return true }

func (m *maddrs) Set(v string) error {
	a, err := ma.NewMultiaddr(v)
	if err != nil {
		return fmt.Errorf("bad multiaddr %q: %w", v, err)
	}
	*m = append(*m, a)
	return nil
}

// newFlags returns a flag set whose usage names the command and its synopsis.
func newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: overlay %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, then fills the flags they left unset from OVERLAY_*
// variables and from the config file (--config or $OVERLAY_CONFIG, for the
// commands that take one). A flag error maps to errUsage (already printed).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	_, err := layers(fs).Apply(fs)
	return err
}

// envPrefix starts the variable of every flag: --max-circuits is
// OVERLAY_MAX_CIRCUITS.
const envPrefix = "OVERLAY"

// layers says where a command's flags come from besides its arguments: the
// environment, and the file its --config flag (or $OVERLAY_CONFIG) names.
func layers(fs *flag.FlagSet) flagconf.Layers {
	l := flagconf.Layers{Prefix: envPrefix, Skip: []string{"config"}}
	if f := fs.Lookup("config"); f != nil {
		l.File = f.Value.String()
		if l.File == "" {
			l.File = os.Getenv(envPrefix + "_CONFIG")
		}
	}
	return l
}

// parseArgs parses args and checks that exactly n positional arguments are
// left, printing the usage when not.
func parseArgs(fs *flag.FlagSet, args []string, n int) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != n {
		fs.Usage()
		return errUsage
	}
	return nil
}
