package tun

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/overlay-net/overlay/cert"
)

// Modes of Options.Mode.
const (
	ModeKernel    = "kernel"    // a Linux TUN interface (root or CAP_NET_ADMIN)
	ModeUserspace = "userspace" // a netstack inside the process, offered as proxies
)

// DefaultName is the kernel interface's default name.
const DefaultName = "overlay0"

// Options are the node's interface settings (node.Config.TUN).
type Options struct {
	Mode string `yaml:"mode"` // ModeKernel or ModeUserspace; "": ModeKernel
	Name string `yaml:"name"` // kernel interface name; "": DefaultName
	MTU  int    `yaml:"mtu"`  // 0: DefaultMTU
	// Userspace-mode settings are the userspace mode's own (userspace*.go).
	SOCKS string `yaml:"socks,omitempty"` // SOCKS5 listen address (userspace)
	HTTP  string `yaml:"http,omitempty"`  // HTTP CONNECT proxy listen address (userspace)
	// Accept are the TCP ports members may connect to in userspace mode,
	// each carried to the same port on the host's loopback (userspace*.go).
	Accept []uint16 `yaml:"accept,omitempty"`
}

// Validate checks o.
func (o Options) Validate() error {
	switch o.Mode {
	case "", ModeKernel, ModeUserspace:
	default:
		return fmt.Errorf("tun mode %q: want %s or %s", o.Mode, ModeKernel, ModeUserspace)
	}
	if o.MTU != 0 && (o.MTU < 1280 || o.MTU > 65535) {
		return fmt.Errorf("tun mtu %d: want 1280 (IPv6's minimum) to 65535", o.MTU)
	}
	if len(o.Name) > 15 {
		return fmt.Errorf("tun name %q: at most 15 bytes (IFNAMSIZ)", o.Name)
	}
	return nil
}

// Deps is what Start needs of the node besides Options.
type Deps struct {
	Host    host.Host
	Members Source
	Policy  Policy            // nil: everything allowed
	Own     *cert.Certificate // this node's certificate; nil outside certificate mode
	Logger  *slog.Logger
}

// Interface is a running overlay interface: the engine and whatever the
// mode set up around it (the kernel interface's routes, proxies, DNS).
type Interface struct {
	*Engine
	Mode    string
	Name    string // the kernel interface's name; "" in userspace mode
	closers []io.Closer
}

// Close stops the engine and everything the mode set up, in reverse order.
func (i *Interface) Close() error {
	var err error
	for j := len(i.closers) - 1; j >= 0; j-- {
		err = errors.Join(err, i.closers[j].Close())
	}
	return err
}

// AddOn starts a service on a running interface (the DNS server, the
// userspace mode's proxies); its Closer runs before the engine stops.
type AddOn func(i *Interface, o Options) (io.Closer, error)

// StartUserspace, when set (by userspace.go), builds the userspace mode:
// it makes the netstack device, calls New with it, and starts the proxies.
var StartUserspace func(o Options, d Deps) (*Interface, error)

// AddOns run on every interface Start brings up, kernel or userspace, in
// order (the DNS server registers here).
var AddOns []AddOn

// Start brings up the interface o names and an engine on it.
func Start(o Options, d Deps) (*Interface, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	var (
		i   *Interface
		err error
	)
	switch o.Mode {
	case ModeUserspace:
		if StartUserspace == nil {
			return nil, errors.New("tun: this build has no userspace mode")
		}
		i, err = StartUserspace(o, d)
	default:
		i, err = startKernel(o, d)
	}
	if err != nil {
		return nil, err
	}
	for _, add := range AddOns {
		c, err := add(i, o)
		if err != nil {
			i.Close()
			return nil, err
		}
		if c != nil {
			i.closers = append(i.closers, c)
		}
	}
	return i, nil
}

// NewInterface wraps a running engine as an Interface of the given mode.
// Close closes the closers in reverse order, then the engine. The
// userspace mode builds its Interface with it.
func NewInterface(e *Engine, mode, name string, closers ...io.Closer) *Interface {
	return &Interface{Engine: e, Mode: mode, Name: name, closers: append([]io.Closer{e}, closers...)}
}
