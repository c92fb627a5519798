package node

import (
	"path/filepath"

	"github.com/overlay-net/overlay/node/tunnel"
)

// tunnelsFileName keeps the services exposed at run time, in the data
// directory.
const tunnelsFileName = "tunnels.json"

func (n *Node) startTunnels() error {
	tc := tunnel.Config{Expose: n.cfg.Expose, Targets: n.cfg.ExposeTargets, Logger: n.log}
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
