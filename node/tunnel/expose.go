package tunnel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/internal/atomicfile"
	"github.com/overlay-net/overlay/protocol"
)

// Where an exposed service was set.
const (
	SourceConfig  = "config"  // the node's configuration (flags): back at every start
	SourceRuntime = "runtime" // the control API: kept in the store file
)

// Exposure is a local TCP service offered to members under a name.
type Exposure struct {
	Name   string `json:"name"`
	Target string `json:"target"` // host:port the serving node connects to
	// Allow, when not empty, admits only these members; else every member.
	Allow  []peer.ID `json:"allow,omitempty"`
	Source string    `json:"source,omitempty"`
}

func (e Exposure) check() error {
	if err := protocol.ValidServiceName(e.Name); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(e.Target)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("service %s: target %q must be HOST:PORT", e.Name, e.Target)
	}
	return nil
}

func (e Exposure) allows(p peer.ID) bool { return len(e.Allow) == 0 || slices.Contains(e.Allow, p) }

// ParseExposure reads NAME=HOST:PORT, the form of the --expose flag.
func ParseExposure(s string) (Exposure, error) {
	name, target, ok := strings.Cut(s, "=")
	if !ok {
		return Exposure{}, fmt.Errorf("expose %q: want NAME=HOST:PORT", s)
	}
	e := Exposure{Name: name, Target: target}
	return e, e.check()
}

// Expose offers e to members, replacing a service of the same name, and
// keeps it in the store file.
func (s *Service) Expose(e Exposure) error {
	e.Source = SourceRuntime
	if err := e.check(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.exposed[e.Name]
	s.exposed[e.Name] = e
	if err := s.saveLocked(); err != nil {
		if had {
			s.exposed[e.Name] = old
		} else {
			delete(s.exposed, e.Name)
		}
		return err
	}
	return nil
}

// Unexpose stops offering the service name; tunnels already open to it
// stay. A service from the configuration comes back at the next start.
func (s *Service) Unexpose(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.exposed[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownService, name)
	}
	delete(s.exposed, name)
	if err := s.saveLocked(); err != nil {
		s.exposed[name] = old
		return err
	}
	return nil
}

// Exposures lists the exposed services, by name.
func (s *Service) Exposures() []Exposure {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Exposure, 0, len(s.exposed))
	for _, e := range s.exposed {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Exposure) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// storeFile is the store's layout; a version lets a later release read an
// older file.
type storeFile struct {
	Version int        `json:"version"`
	Expose  []Exposure `json:"expose"`
}

// maxStore caps the store file: thousands of services fit.
const maxStore = 4 << 20

// load adds the services kept at StorePath; they win over the
// configuration's of the same name, as the later word. A damaged file
// stops the start: exposing less, or more, than the user asked for
// silently would be worse.
func (s *Service) load() error {
	if s.cfg.StorePath == "" {
		return nil
	}
	b, err := atomicfile.ReadCapped(s.cfg.StorePath, maxStore)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read exposed services: %w", err)
	}
	var f storeFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("read exposed services from %s: %w (fix or remove the file)", s.cfg.StorePath, err)
	}
	for _, e := range f.Expose {
		if err := e.check(); err != nil {
			return fmt.Errorf("read exposed services from %s: %w", s.cfg.StorePath, err)
		}
		e.Source = SourceRuntime
		s.exposed[e.Name] = e
	}
	return nil
}

// saveLocked writes the services exposed at run time; s.mu is held.
func (s *Service) saveLocked() error {
	if s.cfg.StorePath == "" {
		return nil
	}
	f := storeFile{Version: 1, Expose: []Exposure{}}
	for _, e := range s.exposed {
		if e.Source == SourceRuntime {
			e.Source = ""
			f.Expose = append(f.Expose, e)
		}
	}
	slices.SortFunc(f.Expose, func(a, b Exposure) int { return strings.Compare(a.Name, b.Name) })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.cfg.StorePath, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save exposed services: %w", err)
	}
	return nil
}

// handle is the serving side of one tunnel stream.
func (s *Service) handle(st network.Stream) {
	if !s.goRunSync(func() { s.serve(st) }) {
		st.Reset()
	}
}

// goRunSync runs fn in the calling goroutine (libp2p gives each stream
// handler its own), counted for Close, unless closed.
func (s *Service) goRunSync(fn func()) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	fn()
	return true
}

func (s *Service) serve(st network.Stream) {
	from := st.Conn().RemotePeer()
	ctx, cancel := context.WithTimeout(s.ctx, protocol.HandshakeTimeout)
	member := s.members.IsMember(ctx, from)
	cancel()
	if !member {
		s.refuse(st, "", protocol.TunnelNotMember, "not a member of this network")
		return
	}
	name, err := protocol.ReadTunnelRequest(st, protocol.TunnelRequestTimeout)
	if err != nil {
		s.log.Debug("bad tunnel request", "peer", from, "err", err)
		st.Reset()
		return
	}
	s.mu.Lock()
	e, ok := s.exposed[name]
	s.mu.Unlock()
	switch {
	case !ok:
		s.refuse(st, name, protocol.TunnelUnknownService, fmt.Sprintf("no service %q here", name))
		return
	case !e.allows(from):
		s.refuse(st, name, protocol.TunnelNotAllowed, fmt.Sprintf("service %q admits only some members, not this one", name))
		return
	}
	dctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	c, err := (&net.Dialer{}).DialContext(dctx, "tcp", e.Target)
	cancel()
	if err != nil {
		s.log.Info("exposed service down", "service", name, "target", e.Target, "peer", from, "err", err)
		s.refuse(st, name, protocol.TunnelServiceDown, fmt.Sprintf("service %q: %v", name, err))
		return
	}
	if err := protocol.WriteTunnelAccept(st); err != nil {
		c.Close()
		st.Reset()
		return
	}
	s.log.Debug("tunnel in", "service", name, "peer", from)
	s.carry(c.(tcpConn), st)
}

// refuse answers with a refusal and closes the stream, so that the answer
// reaches the forwarder before the stream ends.
func (s *Service) refuse(st network.Stream, name string, code protocol.TunnelCode, reason string) {
	s.log.Debug("tunnel refused", "service", name, "peer", st.Conn().RemotePeer(), "why", code)
	_ = st.SetWriteDeadline(time.Now().Add(protocol.TunnelRequestTimeout))
	if err := protocol.WriteTunnelRefuse(st, code, reason); err != nil {
		st.Reset()
		return
	}
	_ = st.Close()
}
