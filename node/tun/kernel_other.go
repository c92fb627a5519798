//go:build !linux

package tun

import "errors"

func startKernel(o Options, d Deps) (*Interface, error) {
	return nil, errors.New("tun: a kernel interface needs Linux; try --tun userspace")
}
