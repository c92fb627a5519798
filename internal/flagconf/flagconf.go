// Package flagconf lets every flag of a flag.FlagSet also be set from the
// environment and from a YAML file, so the flag set stays the one
// definition of every setting. Precedence: flags, then the environment,
// then the file, then the flag's default. The file is a flat mapping of
// flag names to values (lists for repeatable flags); YAML tags, anchors and
// aliases are refused by name rather than read as text.
package flagconf

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/overlay-net/overlay/internal/atomicfile"
)

// Kinds of Source, highest precedence first.
const (
	FromFlag    = "flag"
	FromEnv     = "env"
	FromFile    = "file"
	FromDefault = "default"
)

// Source is where a flag's value came from.
type Source struct {
	Kind  string // FromFlag, FromEnv, FromFile or FromDefault
	Where string // the variable (OVERLAY_MAX_CIRCUITS) or FILE:LINE
}

func (s Source) String() string {
	if s.Where == "" {
		return s.Kind
	}
	return s.Kind + " " + s.Where
}

// Repeatable is a flag value that may be given more than once (each Set
// appends). In the environment its values are separated by commas; in a
// file it takes a list.
type Repeatable interface {
	flag.Value
	Repeatable() bool
}

// Layers says where the values under the command line come from.
type Layers struct {
	// Prefix makes a flag's variable: Prefix + "_" + NAME, dashes as
	// underscores (max-circuits: OVERLAY_MAX_CIRCUITS).
	Prefix string
	// Getenv reads the environment; nil: os.Getenv.
	Getenv func(string) string
	// File is the YAML file; "" for none.
	File string
	// Skip are flags no file may set (the flag naming the file itself).
	Skip []string
	// Omit are flags left as the command line left them, whatever the
	// environment and the file say: a caller finds which setting a failed
	// check depends on by omitting one at a time.
	Omit []string
}

// EnvName returns the variable that sets the flag name.
func (l Layers) EnvName(name string) string {
	return l.Prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Apply sets every flag of fs that the command line (already parsed into
// fs) left unset, from the environment and then from the file, and returns
// where each flag's value came from. Errors name the variable or the file
// and line, and the key.
func (l Layers) Apply(fs *flag.FlagSet) (map[string]Source, error) {
	getenv := l.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	src := map[string]Source{}
	fs.VisitAll(func(f *flag.Flag) { src[f.Name] = Source{Kind: FromDefault} })
	fs.Visit(func(f *flag.Flag) { src[f.Name] = Source{Kind: FromFlag} })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if src[f.Name].Kind != FromDefault || contains(l.Omit, f.Name) {
			return
		}
		name := l.EnvName(f.Name)
		v, ok := lookup(getenv, name)
		if !ok {
			return
		}
		vals := []string{v}
		if isRepeatable(f) {
			vals = splitList(v)
		}
		for _, v := range vals {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: invalid value %q: %w", name, v, err))
				return
			}
		}
		src[f.Name] = Source{Kind: FromEnv, Where: name}
	})
	if err := errors.Join(errs...); err != nil {
		return src, err
	}
	if l.File == "" {
		return src, nil
	}
	entries, err := readFile(l.File)
	if err != nil {
		return src, err
	}
	for _, e := range entries {
		where := fmt.Sprintf("%s:%d", l.File, e.line)
		f := fs.Lookup(e.key)
		if f == nil || contains(l.Skip, e.key) {
			errs = append(errs, fmt.Errorf("%s: unknown key %q", where, e.key))
			continue
		}
		if len(e.values) != 1 && !isRepeatable(f) {
			errs = append(errs, fmt.Errorf("%s: key %q takes one value, not a list", where, e.key))
			continue
		}
		if src[e.key].Kind != FromDefault || contains(l.Omit, e.key) {
			continue // the command line or the environment set it
		}
		for _, v := range e.values {
			if err := fs.Set(e.key, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: key %q: invalid value %q: %w", where, e.key, v, err))
				break
			}
		}
		src[e.key] = Source{Kind: FromFile, Where: where}
	}
	return src, errors.Join(errs...)
}

// lookup reads a variable; set but empty counts as unset, so that
// OVERLAY_X= in a unit file does not override a file with nothing.
func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

func isRepeatable(f *flag.Flag) bool {
	r, ok := f.Value.(Repeatable)
	return ok && r.Repeatable()
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// entry is one key of the file with its value(s) as text.
type entry struct {
	key    string
	line   int
	values []string
}

// readFile reads a flat YAML mapping of flag names to scalars or lists of
// scalars.
func readFile(path string) ([]entry, error) {
	data, err := atomicfile.ReadCapped(path, maxFile)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return parseFile(path, data)
}

// maxFile caps a config file: a few hundred settings take a few KiB; more
// is not a config file.
const maxFile = 1 << 20

// parseFile decodes the config file's bytes; path only names it in errors.
func parseFile(path string, data []byte) (out []entry, err error) {
	f, err := parseYAML(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	seen := map[string]int{}
	for _, doc := range f.Docs {
		if doc.Body == nil {
			continue
		}
		m, ok := doc.Body.(*ast.MappingNode)
		if !ok {
			if mv, one := doc.Body.(*ast.MappingValueNode); one {
				m = &ast.MappingNode{Values: []*ast.MappingValueNode{mv}}
			} else {
				return nil, fmt.Errorf("%s:%d: want a mapping of settings (key: value), got %s", path, line(doc.Body), doc.Body.Type())
			}
		}
		for _, mv := range m.Values {
			e := entry{key: keyName(mv.Key), line: line(mv.Key)}
			if err := plain(mv.Key); err != nil {
				return nil, fmt.Errorf("%s:%d: key %q: %w", path, e.line, e.key, err)
			}
			if first, dup := seen[e.key]; dup {
				return nil, fmt.Errorf("%s:%d: key %q again (first on line %d)", path, e.line, e.key, first)
			}
			seen[e.key] = e.line
			if e.values, err = values(mv.Value); err != nil {
				return nil, fmt.Errorf("%s:%d: key %q: %w", path, e.line, e.key, err)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// parseYAML is the YAML parser with its panics, should a damaged file find
// one, turned into errors: a bad config is a message, never a crash.
func parseYAML(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("not YAML the parser can read (%v)", r)
		}
	}()
	return parser.ParseBytes(data, 0)
}

func values(n ast.Node) ([]string, error) {
	if err := plain(n); err != nil {
		return nil, err
	}
	if seq, ok := n.(*ast.SequenceNode); ok {
		var out []string
		for _, v := range seq.Values {
			s, err := scalar(v)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := scalar(n)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

// keyName is a key's text, under a tag or an anchor if it has one (which
// plain then refuses).
func keyName(n ast.Node) string {
	switch v := n.(type) {
	case *ast.TagNode:
		if v.Value != nil {
			return keyName(v.Value)
		}
	case *ast.AnchorNode:
		if v.Value != nil {
			return keyName(v.Value)
		}
	}
	return n.GetToken().Value
}

// plain refuses the YAML features the reader does not implement, naming
// them: a tag (!!binary), an anchor (&a) or an alias (*a) would otherwise
// be read as the literal text of the value.
func plain(n ast.Node) error {
	switch v := n.(type) {
	case *ast.TagNode:
		return fmt.Errorf("YAML tags (%s) are not supported: write the value as plain text", v.Start.Value)
	case *ast.AnchorNode:
		return fmt.Errorf("YAML anchors (&%s) are not supported: write each value out", v.Name)
	case *ast.AliasNode:
		return fmt.Errorf("YAML aliases (*%s) are not supported: write each value out", v.Value)
	}
	return nil
}

// scalar returns a value as the text a flag parses: a quoted string's
// content, else the text as written (so "off" stays "off", not false).
func scalar(n ast.Node) (string, error) {
	if err := plain(n); err != nil {
		return "", err
	}
	switch v := n.(type) {
	case nil, *ast.NullNode:
		return "", errors.New("no value")
	case *ast.StringNode:
		return v.Value, nil
	case *ast.MappingNode, *ast.MappingValueNode, *ast.SequenceNode:
		return "", fmt.Errorf("want a value, got a %s (settings are flat: one key per flag)", n.Type())
	case ast.ScalarNode:
		return v.GetToken().Value, nil
	}
	return "", fmt.Errorf("want a value, got a %s", n.Type())
}

func line(n ast.Node) int {
	if t := n.GetToken(); t != nil && t.Position != nil {
		return t.Position.Line
	}
	return 0
}
