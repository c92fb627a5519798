package wstransport

import "syscall"

const canWaitReadable = true

// waitReadable returns once the socket has data, an end or an error to
// report, or when the read deadline passes or the connection closes. It
// peeks rather than waiting at once: Go's poller is edge-triggered, so only
// a read that found nothing may wait for the next edge.
func waitReadable(rc syscall.RawConn) error {
	var b [1]byte
	return rc.Read(func(fd uintptr) bool {
		for {
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch err {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				if w := waiting.Load(); w != nil {
					(*w)()
				}
				return false
			}
			return true // data, the end, or an error the read will report
		}
	})
}
