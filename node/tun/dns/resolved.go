package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"strings"
	"time"
)

// resolvectlTimeout bounds each resolvectl call: resolved answers at once
// or is wedged, and a wedged resolver must not hold up the node's start.
const resolvectlTimeout = 5 * time.Second

// ErrNoResolved means systemd-resolved is not running here (or resolvectl
// is missing): names then resolve only by asking the server directly.
var ErrNoResolved = errors.New("systemd-resolved not running")

// RegisterResolved tells systemd-resolved that the interface iface serves
// the ~overlay routing domain at addr (port 53), and is no default route
// for other names. The returned undo reverts the interface's resolved
// settings; call it before the interface goes away. Where resolved does
// not run it returns ErrNoResolved and a no-op undo.
func RegisterResolved(ctx context.Context, iface string, addr netip.Addr, log *slog.Logger) (undo func(), err error) {
	noop := func() {}
	path, err := exec.LookPath("resolvectl")
	if err != nil {
		return noop, ErrNoResolved
	}
	run := func(args ...string) error {
		ctx, cancel := context.WithTimeout(ctx, resolvectlTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("resolvectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	// Without a running resolved, every call below fails; ask once.
	if err := run("status", "--no-pager"); err != nil {
		return noop, ErrNoResolved
	}
	undo = func() {
		if err := run("revert", iface); err != nil && log != nil {
			log.Debug("dns: revert resolved settings", "iface", iface, "err", err)
		}
	}
	for _, args := range [][]string{
		{"dns", iface, addr.String()},
		{"domain", iface, "~" + Domain},
		{"default-route", iface, "false"},
	} {
		if err := run(args...); err != nil {
			undo()
			return noop, err
		}
	}
	return undo, nil
}
