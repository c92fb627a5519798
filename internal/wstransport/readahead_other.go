//go:build !linux

package wstransport

import "syscall"

const canWaitReadable = false

func waitReadable(syscall.RawConn) error { return nil }
