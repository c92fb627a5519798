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

// capture, when set, receives the flag set of a command instead of letting
// parse run it: that is how completion and the check of OVERLAY_* names
// learn every command's flags from the commands themselves.
var capture func(*flag.FlagSet)

// errCaptured stops a command whose flag set capture took.
var errCaptured = errors.New("flags captured")

// parse parses args, flags before or after the positional arguments, then
// fills the flags they left unset from OVERLAY_* variables and from the
// config file (--config or $OVERLAY_CONFIG, for the commands that take
// one). A flag error maps to errUsage (already printed).
func parse(fs *flag.FlagSet, args []string) error {
	if capture != nil {
		capture(fs)
		return errCaptured
	}
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	_, err := layers(fs).Apply(fs)
	return err
}

// parseInterspersed parses args into fs with flags allowed anywhere among
// the positional arguments (overlay ping PEER --count 2); after "--"
// everything is positional. fs.Args() then holds the positional arguments
// in order. A flag error maps to errUsage (already printed), -h to
// flag.ErrHelp.
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	flags, pos := splitArgs(fs, args, "")
	if err := fs.Parse(append(append(flags, "--"), pos...)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		suggestFlag(fs, flags)
		return errUsage
	}
	return nil
}

// suggestFlag names the flag nearest to the first one of flags that fs
// does not know, after the flag package's error and usage.
func suggestFlag(fs *flag.FlagSet, flags []string) {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	for _, a := range flags {
		if len(a) < 2 || a[0] != '-' {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if fs.Lookup(name) != nil {
			continue
		}
		if near := nearest(name, names); near != "" {
			fmt.Fprintf(fs.Output(), "did you mean --%s?\n", near)
		}
		return
	}
}

// splitArgs separates args into flags (each with its value) and positional
// arguments, as the flag package would read them were the flags first. The
// flag named omit is dropped with its value. A flag fs does not know is
// kept for fs.Parse to refuse.
func splitArgs(fs *flag.FlagSet, args []string, omit string) (flags, pos []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, append(pos, args[i+1:]...)
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		name, hasValue := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), false
		if k, _, ok := strings.Cut(name, "="); ok {
			name, hasValue = k, true
		}
		take := 1
		if f := fs.Lookup(name); f != nil && !hasValue && isBool(f) && i+1 < len(args) && acceptsNext(f, args[i+1]) {
			// A flag that stands alone or takes a value (--tun userspace).
			if name != omit || omit == "" {
				flags = append(flags, "--"+name+"="+args[i+1])
			}
			i++
			continue
		}
		if f := fs.Lookup(name); f != nil && !hasValue && !isBool(f) && i+1 < len(args) {
			take = 2 // the value is the next argument, whatever it looks like
		}
		if name != omit || omit == "" {
			flags = append(flags, args[i:i+take]...)
		}
		i += take - 1
	}
	return flags, pos
}

// acceptsNext reports whether boolean-looking flag f takes v as its value.
func acceptsNext(f *flag.Flag, v string) bool {
	o, ok := f.Value.(interface{ AcceptsNext(string) bool })
	return ok && o.AcceptsNext(v)
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
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
