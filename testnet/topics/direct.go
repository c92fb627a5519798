package main

import (
	"context"
	"flag"
	"fmt"
	"time"
)

var direct = flag.Int("direct", 0, "members that also listen on TCP (compose service dmember) and that the check connects to each other directly before the run; the first publishers are among them (0: every member --ws-only)")

// directPort is where a dmember listens (testnet/topics.yml).
const directPort = 4102

// directMeshes waits until each direct member's mesh holds the relays and
// the other direct members (as many as gossipsub's Dlo, 5, lets it
// graft), so that messages between them take their direct connections.
func directMeshes(ctx context.Context, dms []*node, relays int) error {
	want := min(relays+len(dms)-1, 5)
	err := eventually(ctx, 60*time.Second, func() error {
		for _, n := range dms {
			if m, err := meshSize(ctx, n); err != nil || m < want {
				return fmt.Errorf("%s: mesh of %d, want %d (%v)", n.Name, m, want, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("direct members' meshes: %w", err)
	}
	return nil
}

// connectDirect connects every pair of direct members over TCP on the
// compose network, as a hole punch would have.
func connectDirect(ctx context.Context, dms []*node) error {
	ids := make([]string, len(dms))
	for i, n := range dms {
		id, err := peerID(ctx, n)
		if err != nil {
			return err
		}
		ids[i] = id
	}
	for i := range dms {
		for j := i + 1; j < len(dms); j++ {
			target := fmt.Sprintf("/dns4/%s/tcp/%d/p2p/%s", dms[j].Name, directPort, ids[j])
			if _, err := run(ctx, 60*time.Second, "docker", "exec", dms[i].ID, "/overlay", "connect", target); err != nil {
				return fmt.Errorf("%s connects to %s directly: %w", dms[i].Name, dms[j].Name, err)
			}
		}
	}
	return nil
}
