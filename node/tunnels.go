package node

import (
	"fmt"
	"path/filepath"

	"github.com/overlay-net/overlay/node/resume"
	"github.com/overlay-net/overlay/node/tunnel"
)

// tunnelsFileName keeps the services exposed at run time, in the data
// directory.
const tunnelsFileName = "tunnels.json"

func (n *Node) startTunnels() error {
	sm, err := resume.New(n.host, resume.Config{Bus: n.host.EventBus(), Reach: n.EnsureMember, Logger: n.log})
	if err != nil {
		return fmt.Errorf("start sessions: %w", err)
	}
	n.sessions = sm
	tc := tunnel.Config{Expose: n.cfg.Expose, Targets: n.cfg.ExposeTargets, Sessions: sm, Logger: n.log}
	if n.cfg.DataDir != "" {
		tc.StorePath = filepath.Join(n.cfg.DataDir, tunnelsFileName)
	}
	t, err := tunnel.New(n.host, n.policed(), tc)
	if err != nil {
		return err
	}
	n.tunnels = t
	return nil
}

// Tunnels returns the node's tunnel service: services it exposes to
// members, and local ports it forwards to theirs.
func (n *Node) Tunnels() *tunnel.Service { return n.tunnels }

// Sessions returns the node's resumable sessions (tunnels, perf runs).
func (n *Node) Sessions() *resume.Manager { return n.sessions }
