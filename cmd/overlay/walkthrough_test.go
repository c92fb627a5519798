package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
)

// walkthroughMarker precedes each fenced shell block of README's
// walkthrough; the blocks run in order, in one shell.
const walkthroughMarker = "<!-- walkthrough -->"

// readmeWalkthrough returns the walkthrough's shell blocks from README.md,
// joined in order.
func readmeWalkthrough(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	lines := strings.Split(string(b), "\n")
	var script []string
	blocks := 0
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != walkthroughMarker {
			continue
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```sh") {
			t.Fatalf("README.md:%d: %s must be followed by a ```sh block", i+1, walkthroughMarker)
		}
		i += 2
		for ; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			script = append(script, lines[i])
		}
		if i == len(lines) {
			t.Fatalf("README.md: walkthrough block %d is not closed", blocks+1)
		}
		blocks++
	}
	if blocks == 0 {
		t.Fatalf("README.md has no block marked %s", walkthroughMarker)
	}
	return strings.Join(script, "\n") + "\n"
}

// walkthroughPortRE finds the TCP ports the walkthrough names: in HOST:PORT and in
// multiaddrs.
var walkthroughPortRE = regexp.MustCompile(`(127\.0\.0\.1:|/tcp/)(\d{2,5})\b`)

// walkthroughPorts moves every port the script names to a port free on this
// machine now, so the test runs beside other tests and other nodes; the
// same README port always becomes the same free port.
func walkthroughPorts(t *testing.T, script string) (string, map[string]string) {
	t.Helper()
	moved := map[string]string{}
	var hold []net.Listener
	for _, m := range walkthroughPortRE.FindAllStringSubmatch(script, -1) {
		if _, ok := moved[m[2]]; ok {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		hold = append(hold, l)
		moved[m[2]] = fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range hold {
		l.Close()
	}
	return walkthroughPortRE.ReplaceAllStringFunc(script, func(s string) string {
		m := walkthroughPortRE.FindStringSubmatch(s)
		return m[1] + moved[m[2]]
	}), moved
}

// TestWalkthrough runs README's walkthrough as written, in bash, against
// the built binary: only its ports are moved to free ones. It fails when
// a command of it stops working or stops doing what README says: the
// message reaches bob's inbox, and the forwarded port reaches bob's
// service. Each node logs to a file in the walkthrough's directory,
// shown when the test fails.
func TestWalkthrough(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash to run README's walkthrough in")
	}
	readme := readmeWalkthrough(t)
	for _, want := range []string{"overlay relay ", "overlay peer ", "overlay send ", "overlay inbox ", "overlay expose ", "overlay forward ", "kill "} {
		if !strings.Contains(readme, want) {
			t.Fatalf("README's walkthrough no longer runs %q; this test checks that step", want)
		}
	}
	script, moved := walkthroughPorts(t, readme)
	fwd, ok := moved["7500"]
	if !ok || !strings.Contains(script, "overlay status --api 127.0.0.1:"+fwd) {
		t.Fatalf("README's walkthrough no longer reads bob's status through the forwarded port 7500:\n%s", readme)
	}

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = walkthroughEnv(filepath.Dir(bin))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The nodes the script starts in the background share its process
	// group: a failed or timed-out run takes them down with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start bash: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	err := cmd.Wait()

	demo := filepath.Join(dir, "overlay-demo")
	report := func() string {
		var logs strings.Builder
		for _, n := range []string{"relay", "alice", "bob"} {
			b, _ := os.ReadFile(filepath.Join(demo, n+".log"))
			fmt.Fprintf(&logs, "--- %s.log:\n%s\n", n, b)
		}
		return fmt.Sprintf("script (ports moved):\n%s\nstdout:\n%s\nstderr:\n%s\n%s", script, stdout.String(), stderr.String(), logs.String())
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("README's walkthrough did not finish within 2 minutes\n%s", report())
	}
	if err != nil {
		t.Fatalf("README's walkthrough failed: %v\n%s", err, report())
	}

	id := func(name string) string {
		out, err := overlay(t, "id", "--key", filepath.Join(demo, name, "identity.key"))
		if err != nil {
			t.Fatalf("peer ID of %s: %v", name, err)
		}
		return strings.TrimSpace(out)
	}
	alice, bob := id("alice"), id("bob")
	out := stdout.String()
	if !regexp.MustCompile(`(?m)^.*` + regexp.QuoteMeta(alice) + `.*"hello bob"`).MatchString(out) {
		t.Errorf("bob's inbox does not show alice's message:\n%s", report())
	}
	// Only the status read through the forward prints bob's identity;
	// alice's own status names her.
	if !strings.Contains(out, "peer ID:  "+bob) {
		t.Errorf("the forwarded port did not reach bob's service (no status naming bob):\n%s", report())
	}
	if !strings.Contains(out, "peer ID:  "+alice) {
		t.Errorf("alice's status is missing:\n%s", report())
	}
	// Step 6 stopped every node with SIGTERM: each shut down cleanly.
	for _, n := range []string{"relay", "alice", "bob"} {
		b, _ := os.ReadFile(filepath.Join(demo, n+".log"))
		if !strings.Contains(string(b), "shutting down") {
			t.Errorf("%s did not shut down cleanly:\n%s", n, report())
		}
	}
	if _, err := os.Stat(filepath.Join(demo, "bob", "tunnels.json")); err != nil {
		t.Errorf("bob did not keep his exposed service: %v", err)
	}
}

// walkthroughEnv is the test's environment with the built binary first on
// PATH and no OVERLAY_ variables, which would change what README's
// commands do.
func walkthroughEnv(binDir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "OVERLAY_") || strings.HasPrefix(kv, "PATH=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// maxReadmeLines keeps README an entry point: detail goes to docs/.
const maxReadmeLines = 300

// TestWalkthroughDocs checks what a newcomer meets around the walkthrough:
// README stays within maxReadmeLines, and every relative link in README.md
// and docs/*.md names a file that exists and, with a #fragment, a heading
// of that Markdown file.
func TestWalkthroughDocs(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(readme), "\n"); n > maxReadmeLines {
		t.Errorf("README.md has %d lines, more than %d: move detail into a guide in docs/", n, maxReadmeLines)
	}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append([]string{filepath.Join(root, "README.md")}, docs...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range docLinkRE.FindAllStringSubmatch(string(b), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			path, frag, _ := strings.Cut(link, "#")
			target := f
			if path != "" {
				target = filepath.Join(filepath.Dir(f), path)
			}
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s: link %q: %v", filepath.Base(f), link, err)
				continue
			}
			if frag == "" || !strings.HasSuffix(target, ".md") {
				continue
			}
			tb, err := os.ReadFile(target)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(docHeadingSlugs(string(tb)), frag) {
				t.Errorf("%s: link %q: %s has no heading with that anchor", filepath.Base(f), link, filepath.Base(target))
			}
		}
	}
}

// docLinkRE finds the targets of inline Markdown links and images.
var docLinkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// docHeadingSlugs returns the anchors GitHub gives a Markdown file's headings:
// lower case, punctuation other than '-' and '_' dropped, spaces as '-'.
// Headings inside fenced blocks are not headings.
func docHeadingSlugs(md string) []string {
	var out []string
	fenced := false
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(l, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(l, "#")))
		var b strings.Builder
		for _, r := range h {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}
