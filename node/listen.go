package node

import (
	"errors"
	"slices"

	"github.com/overlay-net/overlay/node/listen"
)

// listen binds every configured listen address (package listen). With
// ListenBestEffort an address that does not bind is a WARN line naming it
// and the error, and is listed by ListenFailures (status, health); the
// start still fails if none binds.
func (n *Node) listen() error {
	errs := listen.Bind(n.host.Network(), n.cfg.Listen)
	if len(errs) > 0 && (!n.cfg.ListenBestEffort || len(errs) == len(n.cfg.Listen)) {
		return errors.Join(errs...)
	}
	for _, err := range errs {
		n.log.Warn("listen address not bound; going on without it (best effort)", "err", err)
		n.unbound = append(n.unbound, err.Error())
	}
	return nil
}

// ListenFailures lists the configured listen addresses that did not bind,
// each with its error; only ListenBestEffort starts a node with any.
func (n *Node) ListenFailures() []string { return slices.Clone(n.unbound) }
