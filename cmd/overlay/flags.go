package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

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

// parse parses args and maps a flag error to errUsage (already printed).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
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

// defaultAPI is the control API address clients use: $OVERLAY_API or the
// node's default.
func defaultAPI(fallback string) string {
	if v := os.Getenv("OVERLAY_API"); v != "" {
		return v
	}
	return fallback
}
