package main

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/overlay-net/overlay/internal/flagconf"
	"github.com/overlay-net/overlay/internal/wstransport"
	"github.com/overlay-net/overlay/node/identity"
)

// load parses a node command's settings: args, then the OVERLAY_*
// variables, then the file (file, or else --config or $OVERLAY_CONFIG).
// The setting omit, if any, is left at its default in every layer. Errors
// name the flag, the variable, or the file, line and key.
func load(role string, args []string, file, omit string) (*daemon, *flag.FlagSet, map[string]flagconf.Source, error) {
	x, fs := newDaemon(role)
	flags, pos := splitArgs(fs, args, omit)
	if err := parseInterspersed(fs, append(append(flags, "--"), pos...)); err != nil {
		return x, fs, nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "overlay %s takes no arguments, only flags: %q\n", role, fs.Args())
		fs.Usage()
		return x, fs, nil, errUsage
	}
	l := layers(fs)
	if file != "" {
		l.File = file
	}
	if omit != "" {
		l.Omit = []string{omit}
	}
	src, err := l.Apply(fs)
	return x, fs, src, err
}

// check runs every check a node makes of its settings before it starts,
// with no side effect (no directory made, no key created): finish, the log
// settings, the API's token rule, the key files, and node.Config.Validate.
// It reports every failure, not just the first.
func (x *daemon) check() error {
	var errs []error
	if err := x.finish(); err != nil {
		errs = append(errs, err)
	}
	if _, err := newLogger(x.d.logLevel, x.d.logFormat); err != nil {
		errs = append(errs, err)
	}
	if x.d.api != "off" {
		if _, err := apiToken(x.d.api, x.d.apiToken); err != nil {
			errs = append(errs, err)
		}
	}
	if x.d.pprof != "" {
		if err := checkPprof(x.d.pprof); err != nil {
			errs = append(errs, err)
		}
	}
	cfg := x.cfg
	var err error
	if x.d.netKey != "" {
		if cfg.NetworkKey, err = readNetworkKey(x.d.netKey); err != nil {
			errs = append(errs, err)
		}
	}
	if x.d.psk != "" {
		if cfg.PSK, err = identity.ReadPSK(x.d.psk); err != nil {
			errs = append(errs, err)
		}
	}
	if err := x.checkCertFiles(&cfg.Certs); err != nil {
		errs = append(errs, err)
	}
	if w := cfg.WebSocket; w.CertFile != "" && w.KeyFile != "" || w.CAFile != "" {
		if err := wstransport.CheckFiles(w.CertFile, w.KeyFile, w.CAFile); err != nil {
			errs = append(errs, err)
		}
	}
	// The identity key is loaded (or made) only at start: a stand-in lets
	// Validate judge the rest.
	if cfg.Key, _, err = crypto.GenerateEd25519Key(rand.Reader); err != nil {
		return fmt.Errorf("make a stand-in key: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// loadChecked loads a node command's settings and checks them. A failed
// check is reported with the place of each setting it depends on: found
// by checking again with one setting at a time left at its default, and
// seeing the failure go.
func loadChecked(role string, args []string, file string) (*daemon, *flag.FlagSet, map[string]flagconf.Source, error) {
	x, fs, src, err := load(role, args, file, "")
	if err != nil {
		return x, fs, src, err
	}
	err0 := x.check()
	if err0 == nil {
		return x, fs, src, nil
	}
	fails := failures(err0)
	if len(fails) == 1 && errors.Is(err0, errNoRelay) {
		return x, fs, src, errNoRelay // the command prints its usage
	}
	blame := map[string][]string{}
	names := make([]string, 0, len(src))
	for name, s := range src {
		if s.Kind != flagconf.FromDefault && name != "config" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		y, _, _, err := load(role, args, file, name)
		if err != nil {
			continue
		}
		err = y.check()
		if errors.Is(err, errNoRelay) && !errors.Is(err0, errNoRelay) {
			continue // a peer's relays are required: leaving them out proves nothing
		}
		still := failures(err)
		for _, f := range fails {
			if !slices.Contains(still, f) {
				blame[f] = append(blame[f], name)
			}
		}
	}
	var out []error
	for _, f := range fails {
		var at []string
		for _, name := range blame[f] {
			at = append(at, place(name, src[name]))
		}
		if len(at) == 0 {
			out = append(out, errors.New(f))
			continue
		}
		out = append(out, fmt.Errorf("%s: %s", strings.Join(at, ", "), f))
	}
	return x, fs, src, errors.Join(out...)
}

// failures splits a check's error into its lines, without the prefix that
// node.Config.Validate gives them.
func failures(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimPrefix(l, "config: "); l != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// place says where a setting's value came from, as errors name it: the
// file, line and key, the variable, or the flag.
func place(name string, s flagconf.Source) string {
	switch s.Kind {
	case flagconf.FromFile:
		return fmt.Sprintf("%s: key %q", s.Where, name)
	case flagconf.FromEnv:
		return s.Where
	}
	return "--" + name
}

// projectEnv are OVERLAY_ variables that are no command's flag but that
// the project itself sets: OVERLAY_CONFIG names the file; the others are
// read by its tests (node/nodetest, node/api), which may run the binary.
var projectEnv = []string{envPrefix + "_CONFIG", envPrefix + "_TEST_LOG", envPrefix + "_SCREENSHOT"}

// checkEnv reports the OVERLAY_ variables of environ that neither set a
// flag of any command nor are the project's own: a typo
// (OVERLAY_MAX_RESERVATION) would otherwise be ignored without a word,
// while a file's unknown key is an error.
func checkEnv(environ []string) error {
	known := slices.Clone(projectEnv)
	l := flagconf.Layers{Prefix: envPrefix}
	for _, c := range allCommands() {
		if fs := flagsOf(c); fs != nil {
			fs.VisitAll(func(f *flag.Flag) { known = append(known, l.EnvName(f.Name)) })
		}
	}
	var errs []error
	for _, kv := range environ {
		name, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix+"_") || v == "" || slices.Contains(known, name) {
			continue // set but empty counts as unset, as flagconf reads it
		}
		msg := fmt.Sprintf("%s is no setting of any overlay command", name)
		if near := nearest(name, known); near != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", near)
		}
		errs = append(errs, errors.New(msg+"; unset it"))
	}
	return errors.Join(errs...)
}

// nearest returns the word of words closest to w, if within a third of
// w's length in edits.
func nearest(w string, words []string) string {
	best, bestD := "", len(w)/3+1
	for _, k := range words {
		if d := editDistance(w, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}
