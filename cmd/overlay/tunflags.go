package main

import (
	"flag"
	"fmt"

	"github.com/overlay-net/overlay/node/tun"
)

// tunFlags are the overlay interface's flags (node/tun).
type tunFlags struct {
	mode tunMode
	name string
	mtu  int
}

// registerTUN binds the interface flags to fs.
func (t *tunFlags) register(fs *flag.FlagSet) {
	fs.Var(&t.mode, "tun", "bring up the overlay network interface: --tun (or --tun kernel) a Linux TUN interface with this member's addresses and routes to the overlay prefixes (root or CAP_NET_ADMIN); --tun userspace the same network inside the process, offered as proxies; off (default) none")
	fs.StringVar(&t.name, "tun-name", tun.DefaultName, "name of the kernel overlay interface (--tun)")
	fs.IntVar(&t.mtu, "tun-mtu", tun.DefaultMTU, "MTU of the overlay interface (--tun), 1280 to 65535; packets travel whole inside a libp2p stream, so the path never fragments them (docs/tun.md)")
}

// options returns the node's interface settings, nil for none.
func (t *tunFlags) options() (*tun.Options, error) {
	if t.mode == "" {
		return nil, nil
	}
	o := &tun.Options{Mode: string(t.mode), Name: t.name, MTU: t.mtu}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// tunMode is --tun: a flag that stands alone (kernel) or takes a mode.
type tunMode string

func (m *tunMode) String() string { return string(*m) }

func (m *tunMode) Set(v string) error {
	switch v {
	case "true", tun.ModeKernel:
		*m = tun.ModeKernel
	case tun.ModeUserspace:
		*m = tun.ModeUserspace
	case "false", "off", "":
		*m = ""
	default:
		return fmt.Errorf("--tun %q: want kernel, userspace or off", v)
	}
	return nil
}

// IsBoolFlag lets --tun stand alone; AcceptsNext lets splitArgs take its
// mode from the next argument (--tun userspace).
func (m *tunMode) IsBoolFlag() bool { return true }

func (m *tunMode) AcceptsNext(v string) bool {
	return v == tun.ModeKernel || v == tun.ModeUserspace || v == "off"
}
