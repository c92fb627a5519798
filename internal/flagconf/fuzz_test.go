package flagconf

import (
	"os"
	"testing"
)

// FuzzParseFile feeds the config decoder arbitrary bytes: it must answer
// with entries or an error, never a panic or a hang, and never let a key
// through twice.
func FuzzParseFile(f *testing.F) {
	if b, err := os.ReadFile("../../deploy/overlay.example.yaml"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"relay: [/ip4/1.2.3.4/tcp/4001/p2p/x, /dns4/r.example/tcp/443/wss]\nmax-book: 10\n",
		"api: off\nlog-level: \"debug\"\n",
		"a: 1\na: 2\n",
		"nested:\n  deeper: 1\n",
		"- just\n- a list\n",
		"key: &anchor value\nother: *anchor\n",
		"? complex\n: key\n",
		"--- \na: 1\n---\nb: 2\n",
		"a: !!binary aGVsbG8=\n",
		"network: !!str foo\n",
		"network: &a foo\nlog-level: *a\n",
		"base: &b {a: 1}\nother:\n  <<: *b\n",
		"!!str key: value\n",
		"relay:\n  - &r /a\n  - *r\n",
		"\t\x00\xff: {",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := parseFile("fuzz.yaml", data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range entries {
			if seen[e.key] {
				t.Fatalf("key %q accepted twice", e.key)
			}
			seen[e.key] = true
		}
	})
}
