package main

import (
	"testing"

	"github.com/overlay-net/overlay/node/tun"
)

func TestTUNFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		mode string
		pos  int
	}{
		{nil, "", 0},
		{[]string{"--tun"}, tun.ModeKernel, 0},
		{[]string{"--tun", "userspace"}, tun.ModeUserspace, 0},
		{[]string{"--tun=userspace"}, tun.ModeUserspace, 0},
		{[]string{"--tun", "kernel", "--tun-name", "ov1"}, tun.ModeKernel, 0},
		{[]string{"--tun", "other"}, tun.ModeKernel, 1}, // not a mode: a positional argument
		{[]string{"--tun", "off"}, "", 0},
	} {
		x, fs := newPeer()
		if err := parseInterspersed(fs, c.args); err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		o, err := x.d.tun.options()
		if err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		got := ""
		if o != nil {
			got = o.Mode
		}
		if got != c.mode || fs.NArg() != c.pos {
			t.Errorf("%q: mode %q with %d positional, want %q with %d", c.args, got, fs.NArg(), c.mode, c.pos)
		}
	}
}
