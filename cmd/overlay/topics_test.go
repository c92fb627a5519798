package main_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// checkTopics follows a topic on b with overlay sub and publishes to it
// from a with overlay pub, one message and then lines from stdin.
func checkTopics(t *testing.T, aAPI, bAPI string) {
	t.Helper()
	var out, errb syncBuffer
	sub := exec.Command(bin, "sub", "--json", "--timeout", "2m", "--api", bAPI, "news")
	sub.Stdout, sub.Stderr = &out, &errb
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sub.Wait() }()
	defer func() {
		_ = sub.Process.Signal(os.Interrupt)
		if err := <-exited; err != nil {
			t.Errorf("overlay sub after an interrupt: %v: %s", err, errb.String())
		}
	}()
	eventually(t, 30*time.Second, "overlay sub prints what overlay pub publishes", func() error {
		if _, err := overlay(t, "pub", "--api", aAPI, "news", "hello topic"); err != nil {
			return err
		}
		if !strings.Contains(out.String(), `"text":"hello topic"`) {
			return errors.New("not yet")
		}
		return nil
	})
	pub := exec.Command(bin, "pub", "--stdin", "--api", aAPI, "news")
	pub.Stdin = strings.NewReader("line one\nline two\n")
	if b, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("pub --stdin: %v: %s", err, b)
	}
	eventually(t, 20*time.Second, "both lines arrive", func() error {
		if !strings.Contains(out.String(), `"text":"line one"`) || !strings.Contains(out.String(), `"text":"line two"`) {
			return errors.New("not yet")
		}
		return nil
	})
	js, err := overlay(t, "topics", "--json", "--api", bAPI)
	if err != nil {
		t.Fatal(err)
	}
	var ts []struct {
		Name      string `json:"name"`
		Followers int    `json:"followers"`
		Delivered uint64 `json:"delivered"`
	}
	if err := json.Unmarshal([]byte(js), &ts); err != nil || len(ts) != 1 || ts[0].Name != "news" || ts[0].Followers != 1 || ts[0].Delivered < 3 {
		t.Fatalf("topics --json = %s (%v)", js, err)
	}
	if table, err := overlay(t, "topics", "--api", bAPI); err != nil || !strings.Contains(table, "news") {
		t.Errorf("topics: %q, %v", table, err)
	}
}
