package main_test

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/cli from the CLI's own help")

const docsDir = "../../docs/cli"

// help runs the binary with args under a fixed home directory, so that
// defaults derived from it read the same everywhere.
func help(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"HOME=/home/you", "PATH=" + os.Getenv("PATH")}
	out, _ := cmd.CombinedOutput() // --help exits 0 or 2 by command; the text is what counts
	return string(out)
}

// commandNames lists the commands as the CLI's own usage names them.
func commandNames(t *testing.T) []string {
	re := regexp.MustCompile(`(?m)^  overlay ([a-z]+)`)
	var names []string
	for _, m := range re.FindAllStringSubmatch(help(t, "help"), -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only %v in overlay help", names)
	}
	return names
}

func page(name, helpText string) string {
	return "# overlay " + name + "\n\n" +
		"<!-- Generated from `overlay " + name + " --help` by `make docs`; TestCLIDocs fails when it drifts. Do not edit. -->\n\n" +
		"```text\n" + strings.TrimRight(helpText, "\n") + "\n```\n\n" +
		"Every flag can also be set as `OVERLAY_<FLAG>` (dashes as underscores); `relay` and `peer` also read\n" +
		"`--config FILE` (YAML). Precedence: flags, environment, file, defaults ([README](../../README.md#configuration-flags-environment-file)).\n"
}

// docs/cli has one page per command, made from the command's own --help,
// and an index from `overlay help`: a test that fails when they drift from
// the CLI (make docs rewrites them).
func TestCLIDocs(t *testing.T) {
	names := commandNames(t)
	want := map[string]string{"README.md": "# Command reference\n\n<!-- Generated from `overlay help` by `make docs`. Do not edit. -->\n\n" +
		"```text\n" + strings.TrimRight(help(t, "help"), "\n") + "\n```\n\nOne page per command:\n\n"}
	for _, n := range names {
		want["README.md"] += "- [overlay " + n + "](" + n + ".md)\n"
		want[n+".md"] = page(n, help(t, n, "--help"))
	}
	if *update {
		if err := os.MkdirAll(docsDir, 0o755); err != nil {
			t.Fatal(err)
		}
		old, _ := filepath.Glob(filepath.Join(docsDir, "*.md"))
		for _, p := range old {
			os.Remove(p)
		}
		for f, text := range want {
			if err := os.WriteFile(filepath.Join(docsDir, f), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	have, _ := filepath.Glob(filepath.Join(docsDir, "*.md"))
	for _, p := range have {
		if _, ok := want[filepath.Base(p)]; !ok {
			t.Errorf("%s documents no command of overlay help; run make docs", p)
		}
	}
	for f, text := range want {
		b, err := os.ReadFile(filepath.Join(docsDir, f))
		if err != nil || string(b) != text {
			t.Errorf("docs/cli/%s is missing or out of date with the CLI; run make docs", f)
		}
	}
}
