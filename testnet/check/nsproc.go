// Host programs inside a container's network namespace: the namespace
// named for `ip netns exec`, and servers started there and stopped again.

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/overlay-net/overlay/testnet/internal/compose"
)

// enterNS names the network namespace of svc's container for
// `ip netns exec`: /run/netns/NAME, a symbolic link to the container's
// /proc/PID/ns/net, and /etc/netns/NAME/resolv.conf naming nameserver,
// which `ip netns exec` mounts over /etc/resolv.conf for the program it
// runs. It returns the name and the function that removes both, which
// the checker's cleanup runs too.
//
// The names are fixed (overlay-testnet-SVC): a link a killed run left is
// replaced. The link does not keep the namespace alive; it points at the
// container's process, which outlives the check.
func (c *checker) enterNS(svc, nameserver string) (string, func(), error) {
	id, ok := c.ids[svc]
	if !ok {
		return "", nil, fmt.Errorf("no container for %s", svc)
	}
	out, err := runCmd(20*time.Second, "docker", "inspect", "--format", "{{.State.Pid}}", id)
	if err != nil {
		return "", nil, fmt.Errorf("PID of %s: %w", svc, err)
	}
	pid := strings.TrimSpace(out)
	if pid == "" || pid == "0" {
		return "", nil, fmt.Errorf("%s: no running process (PID %q)", svc, pid)
	}
	name := project + "-" + svc
	link := filepath.Join("/run/netns", name)
	conf := filepath.Join("/etc/netns", name)
	undo, err := c.owned(func() error {
		if err := os.MkdirAll("/run/netns", 0o755); err != nil {
			return err
		}
		if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.Symlink("/proc/"+pid+"/ns/net", link); err != nil {
			return err
		}
		if err := os.MkdirAll(conf, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(conf, "resolv.conf"), []byte("nameserver "+nameserver+"\noptions timeout:2 attempts:2\n"), 0o644)
	}, func() {
		os.Remove(link)
		os.RemoveAll(conf)
	})
	if err != nil {
		return "", undo, fmt.Errorf("name the namespace of %s: %w", svc, err)
	}
	return name, undo, nil
}

// inNS runs a program in the named namespace with a deadline and returns
// its standard output.
func inNS(ns string, timeout time.Duration, args ...string) (string, error) {
	return runCmd(timeout, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// server is a program started in a namespace in the background; the
// checker's cleanup stops it.
type server struct {
	name string
	cmd  *exec.Cmd
	log  string        // file of its output
	done chan struct{} // closed once it exited
	err  error         // its exit, once done
}

// startIn starts args in the namespace ns in a process group of its own,
// its output to DIR/NAME.log, and registers its stop (SIGTERM to the
// group, SIGKILL after 3 s) as a cleanup, which it also returns.
func (c *checker) startIn(ns, dir, name string, args ...string) (*server, func(), error) {
	log := filepath.Join(dir, name+".log")
	f, err := os.Create(log)
	if err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer f.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s := &server{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	stop, err := c.owned(func() error {
		if err := cmd.Start(); err != nil {
			return err
		}
		go func() {
			s.err = cmd.Wait()
			close(s.done)
		}()
		return nil
	}, func() {
		if cmd.Process == nil {
			return // never started
		}
		pg := -cmd.Process.Pid
		_ = syscall.Kill(pg, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(pg, syscall.SIGKILL)
			<-s.done
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	return s, stop, nil
}

// waitListening waits until something listens on TCP port in ns, and
// fails early if the server exited.
func (s *server) waitListening(ns, port string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := inNS(ns, 10*time.Second, "ss", "-Hltn", "sport = :"+port)
		if err == nil && strings.TrimSpace(out) != "" {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("%s exited (%v): %s", s.name, s.err, s.tail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: nothing listens on port %s within %s: %s", s.name, port, timeout, s.tail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tail is the last line of the server's output.
func (s *server) tail() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return compose.FirstLine(lines[len(lines)-1])
}
