// Package buildinfo says which build of overlay is running: module version,
// commit and Go version, read from the binary's own build information.
package buildinfo

import (
	"fmt"
	"runtime/debug"
)

// version and commit are set by the Makefile with -ldflags -X, for builds
// where the Go toolchain stamps no VCS information (GOFLAGS=-buildvcs=false,
// as in CI) or no module version (any build from a work tree).
var version, commit string

// Info is what a binary knows about its own build.
type Info struct {
	Version   string `json:"version"`    // module version, "(devel)" for a local build without a tag
	Commit    string `json:"commit"`     // VCS revision, "unknown" when not stamped
	Modified  bool   `json:"modified"`   // built from a work tree with uncommitted changes
	GoVersion string `json:"go_version"` // toolchain that built it
}

// Get reads the running binary's build information.
func Get() Info {
	in := Info{Version: "(devel)", Commit: "unknown", GoVersion: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return in
	}
	in.GoVersion = bi.GoVersion
	if v := bi.Main.Version; v != "" {
		in.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Commit = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	if in.Version == "(devel)" && version != "" {
		in.Version = version
	}
	if in.Commit == "unknown" && commit != "" {
		in.Commit = commit
	}
	return in
}

// String is one line for people: "overlay v1.2.3 (commit abc123, go1.26.8)".
func (i Info) String() string {
	c := i.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	if i.Modified {
		c += "+dirty"
	}
	return fmt.Sprintf("overlay %s (commit %s, %s)", i.Version, c, i.GoVersion)
}
