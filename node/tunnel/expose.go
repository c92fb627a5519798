package tunnel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
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
	if strings.Trim(e.Name, ".") == "" {
		// The control API names a service in its URL path, where "." and
		// ".." are path steps, not names: it could never be removed.
		return fmt.Errorf("service name %q: not a name (a URL path reads it as a directory step); pick another", e.Name)
	}
	host, port, err := net.SplitHostPort(e.Target)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("service %s: target %q must be HOST:PORT", e.Name, e.Target)
	}
	if err := checkPort(port); err != nil {
		return fmt.Errorf("service %s: target %q: %w", e.Name, e.Target, err)
	}
	return nil
}

// checkPort accepts a TCP port a connection can go to: 1 to 65535, or a
// service name the system knows ("ssh").
func checkPort(s string) error {
	p, err := net.LookupPort("tcp", s)
	if err != nil {
		return fmt.Errorf("port %q: not a port number 1-65535 nor a known service name", s)
	}
	if p < 1 || p > 65535 {
		return fmt.Errorf("port %q: must be 1-65535", s)
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

// Expose offers e to members and keeps it in the store file. A service of
// the same name is an error wrapping ErrExists unless replace is set; then
// it is replaced, and its open tunnels from members e no longer admits are
// cut. It reports whether it replaced one.
func (s *Service) Expose(e Exposure, replace bool) (replaced bool, err error) {
	e.Source = SourceRuntime
	if err := e.check(); err != nil {
		return false, err
	}
	if err := s.cfg.Targets.Check(e.Target); err != nil {
		return false, fmt.Errorf("service %s: %w", e.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.exposed[e.Name]
	if had && !replace {
		return false, fmt.Errorf("%w: %q (to %s, set by %s); remove it first, or replace it", ErrExists, e.Name, old.Target, old.Source)
	}
	s.exposed[e.Name] = e
	if err := s.saveLocked(); err != nil {
		if had {
			s.exposed[e.Name] = old
		} else {
			delete(s.exposed, e.Name)
		}
		return false, err
	}
	if had {
		s.cutDisallowedLocked(e)
	}
	return had, nil
}

// cutDisallowedLocked cuts the tunnels served under e's name to members e
// does not admit (its allow list narrowed); s.mu is held.
func (s *Service) cutDisallowedLocked(e Exposure) {
	for p := range s.live {
		if p.served != e.Name || e.allows(p.peer) {
			continue
		}
		s.logs.info(s.log, "tunnel cut: member no longer allowed", "service", e.Name, "peer", p.peer)
		p.abort(ErrNotAllowed)
	}
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

// storeVersion is the version of storeFile this build writes and reads.
const storeVersion = 1

// maxStore caps the store file: thousands of services fit.
const maxStore = 4 << 20

// parseStore reads a store file, strictly: an unknown key (a typo such as
// "Allowed" for "allow" would otherwise admit every member), an unknown or
// missing version, a name listed twice or an invalid entry refuses the
// whole file.
func parseStore(b []byte) ([]Exposure, error) {
	if len(b) > maxStore {
		return nil, fmt.Errorf("%d bytes, more than %d", len(b), maxStore)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f storeFile
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("more data after the JSON object")
	}
	if f.Version != storeVersion {
		return nil, fmt.Errorf("version %d, this build reads version %d", f.Version, storeVersion)
	}
	seen := make(map[string]bool, len(f.Expose))
	for i, e := range f.Expose {
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("entry %d: service %q listed twice", i+1, e.Name)
		}
		seen[e.Name] = true
		f.Expose[i].Source = SourceRuntime
	}
	return f.Expose, nil
}

// load adds the services kept at StorePath; they win over the
// configuration's of the same name, as the later word. A file that cannot
// be read as a whole is moved aside, as the peer book is, and reported
// with an error wrapping ErrCorrupt: the node then exposes only its
// configuration's services, never more than asked for. Any other failure
// to read it (a directory in its place, no permission) stops the start.
func (s *Service) load() error {
	if s.cfg.StorePath == "" {
		return nil
	}
	b, err := atomicfile.ReadCapped(s.cfg.StorePath, maxStore)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case errors.Is(err, atomicfile.ErrTooLarge):
		return setAside(s.cfg.StorePath, err)
	case err != nil:
		return fmt.Errorf("read exposed services from %s: %w", s.cfg.StorePath, err)
	}
	es, err := parseStore(b)
	if err != nil {
		return setAside(s.cfg.StorePath, err)
	}
	for _, e := range es {
		if err := s.cfg.Targets.Check(e.Target); err != nil {
			return setAside(s.cfg.StorePath, fmt.Errorf("service %s: %w", e.Name, err))
		}
	}
	for _, e := range es {
		s.exposed[e.Name] = e
	}
	return nil
}

// setAside moves a damaged store file out of the way, to
// path.corrupt-<time>, and returns the error that reports it.
func setAside(path string, why error) error {
	aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405.000000000"))
	if err := os.Rename(path, aside); err != nil {
		return fmt.Errorf("%w: %s: %v (and could not move it aside: %v)", ErrCorrupt, path, why, err)
	}
	return fmt.Errorf("%w: %s: %v; moved to %s", ErrCorrupt, path, why, aside)
}

// saveLocked writes the services exposed at run time; s.mu is held.
func (s *Service) saveLocked() error {
	if s.cfg.StorePath == "" {
		return nil
	}
	f := storeFile{Version: storeVersion, Expose: []Exposure{}}
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

// handle is the serving side of one tunnel stream of 1.0.0, handle2 of
// 2.0.0.
func (s *Service) handle(st network.Stream) {
	if !s.goRunSync(func() { s.serve(st, false) }) {
		st.Reset()
	}
}

func (s *Service) handle2(st network.Stream) {
	if !s.goRunSync(func() { s.serve(st, true) }) {
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

func (s *Service) serve(st network.Stream, v2 bool) {
	from := st.Conn().RemotePeer()
	ctx, cancel := context.WithTimeout(s.ctx, protocol.HandshakeTimeout)
	member := s.members.IsMember(ctx, from)
	cancel()
	if !member {
		s.refuse(st, "", protocol.TunnelNotMember, "not a member of this network")
		return
	}
	var (
		id   protocol.SessionID
		name string
		err  error
	)
	if v2 {
		id, name, err = protocol.ReadTunnelRequest2(st, protocol.TunnelRequestTimeout)
	} else {
		name, err = protocol.ReadTunnelRequest(st, protocol.TunnelRequestTimeout)
	}
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
	if pol, ok := s.members.(Policy); ok {
		if err := pol.AllowTunnelFrom(from, name); err != nil {
			s.refuse(st, name, protocol.TunnelNotAllowed, "the serving member's access policy: "+err.Error())
			return
		}
	}
	dctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	c, err := (&net.Dialer{Control: s.cfg.Targets.control}).DialContext(dctx, "tcp", e.Target)
	cancel()
	if err != nil {
		s.logs.info(s.log, "exposed service down", "service", name, "target", e.Target, "peer", from, "err", err)
		s.refuse(st, name, protocol.TunnelServiceDown, fmt.Sprintf("service %q: %v", name, err))
		return
	}
	var conn Conn = st
	if v2 {
		sess, err := s.cfg.Sessions.Accept(st, id, func(st network.Stream) error { return protocol.WriteTunnelAccept(st) })
		if err != nil {
			s.log.Debug("tunnel session not started", "service", name, "peer", from, "err", err)
			c.Close()
			st.Reset()
			return
		}
		conn = sessionConn{sess, s.ctx}
	} else if err := protocol.WriteTunnelAccept(st); err != nil {
		c.Close()
		st.Reset()
		return
	}
	s.log.Debug("tunnel in", "service", name, "peer", from, "resumable", v2)
	s.carry(c.(tcpConn), conn, from, name)
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
