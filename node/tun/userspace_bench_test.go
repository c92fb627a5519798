package tun

import (
	"context"
	"io"
	"net/netip"
	"strconv"
	"testing"
	"time"

	wgtun "golang.zx2c4.com/wireguard/tun"
)

// pump copies packets from one device to another until src fails.
func pump(src, dst wgtun.Device, mtu int) {
	const offset = 16
	n := src.BatchSize()
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, offset+mtu)
	}
	sizes := make([]int, n)
	for {
		k, err := src.Read(bufs, sizes, offset)
		if err != nil {
			return
		}
		out := make([][]byte, k)
		for i := 0; i < k; i++ {
			out[i] = bufs[i][:offset+sizes[i]]
		}
		if _, err := dst.Write(out, offset); err != nil {
			return
		}
	}
}

// BenchmarkUserspacePair measures TCP through two userspace stacks joined
// back to back (no engine, no libp2p): the cost of the netstack alone.
//
//	go test -run '^$' -bench UserspacePair -benchtime 64x ./node/tun
func BenchmarkUserspacePair(b *testing.B) {
	for _, mtu := range []int{1420, 9000} {
		b.Run("mtu"+strconv.Itoa(mtu), func(b *testing.B) {
			a4, b4 := netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("100.64.0.2")
			ua, err := NewUserspace([]netip.Addr{a4}, mtu)
			if err != nil {
				b.Fatal(err)
			}
			defer ua.Close()
			ub, err := NewUserspace([]netip.Addr{b4}, mtu)
			if err != nil {
				b.Fatal(err)
			}
			defer ub.Close()
			go pump(ua.Device(), ub.Device(), mtu)
			go pump(ub.Device(), ua.Device(), mtu)
			l, err := ub.Net().ListenTCPAddrPort(netip.AddrPortFrom(b4, 9))
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := ua.DialContext(ctx, "tcp", netip.AddrPortFrom(b4, 9).String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			chunk := make([]byte, 1<<20)
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
