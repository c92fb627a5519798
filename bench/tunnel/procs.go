package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/overlay-net/overlay/node/api"
)

// procs owns every child process; kill ends them all.
type procs struct {
	mu   sync.Mutex
	list []*exec.Cmd
	done []chan struct{}
}

// node is a running overlay daemon.
type node struct {
	pid int
	id  string
	api *api.Client
	log string
}

// node starts an overlay daemon in its own process group and waits until
// its API answers and it is healthy (a peer: holds its reservation).
func (ps *procs) node(ctx context.Context, bin, dir, name, role string, args ...string) (*node, error) {
	data := filepath.Join(dir, name)
	args = append([]string{role, "--data", data, "--api", "127.0.0.1:0", "--no-dht",
		"--addr-file", filepath.Join(dir, name+".addrs")}, args...)
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); lf.Close(); close(done) }()
	ps.mu.Lock()
	ps.list, ps.done = append(ps.list, cmd), append(ps.done, done)
	ps.mu.Unlock()

	n := &node{pid: cmd.Process.Pid, log: logPath}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if addr := strings.TrimSpace(readFile(filepath.Join(data, "api.addr"))); addr != "" && n.api == nil {
			n.api = api.NewClient(addr)
		}
		if n.api != nil {
			if h, err := n.api.Health(ctx); err == nil && h.OK {
				st, err := n.api.Status(ctx)
				if err != nil {
					return nil, err
				}
				n.id = st.PeerID
				return n, nil
			}
		}
		select {
		case <-done:
			return nil, fmt.Errorf("%s exited; log: %s", name, readFile(logPath))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s not healthy within 30s; log: %s", name, readFile(logPath))
		}
	}
}

// kill sends SIGTERM to every child's group, waits up to 3 s, then SIGKILLs.
func (ps *procs) kill() {
	ps.mu.Lock()
	list, done := slices.Clone(ps.list), slices.Clone(ps.done)
	ps.mu.Unlock()
	for _, c := range list {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
	}
	deadline := time.After(3 * time.Second)
	for i, c := range list {
		select {
		case <-done[i]:
		case <-deadline:
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			<-done[i]
		}
	}
}

// services are the TCP services the nodes expose: a source that sends
// its bytes to every connection, a sink that reads until the half-close
// and answers one byte, and an echo.
type services struct {
	source, sink, echo net.Listener
}

func startServices(n int64) (*services, error) {
	s := &services{}
	for _, l := range []*net.Listener{&s.source, &s.sink, &s.echo} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		*l = ln
	}
	go acceptLoop(s.source, func(c net.Conn) {
		if writeZeros(c, n) == nil {
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c)
		}
	})
	go acceptLoop(s.sink, func(c net.Conn) {
		if _, err := io.CopyBuffer(io.Discard, c, make([]byte, 64<<10)); err == nil {
			c.Write([]byte{1})
		}
	})
	go acceptLoop(s.echo, func(c net.Conn) { io.Copy(c, c) })
	return s, nil
}

func acceptLoop(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

func (s *services) close() {
	s.source.Close()
	s.sink.Close()
	s.echo.Close()
}
