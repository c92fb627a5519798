package main

import (
	"bytes"
	"fmt"
	"net"
	"os"

	"github.com/overlay-net/overlay/node/api"
)

// checkDataDir makes the data directory and proves it writable, before
// anything starts: the peer book, api.addr and a new key are written there,
// and a node that found out only after its API listened exited with a
// puzzle. Root passes permission bits, so the check writes a file.
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data directory %s: %w (choose another with --data)", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w (the node keeps its peer book and api.addr there; fix its permissions or choose another with --data)", dir, err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("data directory %s: remove %s: %w", dir, name, err)
	}
	return nil
}

// minToken is the shortest token accepted: 16 random bytes are beyond
// guessing, also at the rate a network lets one try.
const minToken = 16

// readToken reads an API token file; surrounding white space is not part
// of the token, so `head -c 32 /dev/urandom | base64 > FILE` works.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read API token: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < minToken {
		return "", fmt.Errorf("API token %s is %d bytes; use at least %d (head -c 32 /dev/urandom | base64 > %s)", path, len(b), minToken, path)
	}
	return string(b), nil
}

// apiToken returns the daemon's API token ("" for none), refusing an API
// beyond loopback without one before anything starts: anyone who reaches
// the port could drive the node. api.Listen checks the bound address again.
func apiToken(addr, file string) (string, error) {
	if file != "" {
		return readToken(file)
	}
	if !loopbackAddr(addr) {
		return "", fmt.Errorf("API address %s is not loopback: %w; make one with head -c 32 /dev/urandom | base64 > FILE, or keep the API on 127.0.0.1", addr, api.ErrNeedToken)
	}
	return "", nil
}

// loopbackAddr reports whether HOST:PORT names a loopback address; a host
// name other than localhost is not taken on trust.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
