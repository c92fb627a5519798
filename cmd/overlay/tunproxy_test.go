package main

import (
	"slices"
	"testing"

	"github.com/overlay-net/overlay/node/tun"
)

func TestTunProxyFlags(t *testing.T) {
	o := &tun.Options{Mode: tun.ModeUserspace}
	p := tunProxyFlags{socks: defaultSOCKS, http: "127.0.0.1:8080", accept: "22, 8000"}
	if err := p.apply(o); err != nil {
		t.Fatal(err)
	}
	if o.SOCKS != defaultSOCKS || o.HTTP != "127.0.0.1:8080" || !slices.Equal(o.Accept, []uint16{22, 8000}) {
		t.Errorf("options %+v", o)
	}
	off := &tun.Options{Mode: tun.ModeUserspace}
	if err := (&tunProxyFlags{socks: "off"}).apply(off); err != nil || off.SOCKS != "" {
		t.Errorf("--socks5 off: %+v %v", off, err)
	}
	kernel := &tun.Options{Mode: tun.ModeKernel}
	if err := p.apply(kernel); err != nil || kernel.SOCKS != "" || kernel.Accept != nil {
		t.Errorf("kernel mode took proxy settings: %+v %v", kernel, err)
	}
	for _, bad := range []tunProxyFlags{{socks: "1080"}, {http: "nohost"}, {accept: "0"}, {accept: "70000"}, {accept: "ssh"}} {
		if err := bad.apply(&tun.Options{Mode: tun.ModeUserspace}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if err := p.apply(nil); err != nil {
		t.Error(err)
	}
}
