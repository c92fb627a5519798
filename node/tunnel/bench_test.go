package tunnel_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/overlay-net/overlay/node"
	nt "github.com/overlay-net/overlay/node/nodetest"
	"github.com/overlay-net/overlay/protocol"
)

// directPair joins two relays-as-members straight over loopback TCP: the
// path a hole punch leaves.
func directPair(b *testing.B) (x, y *node.Node) {
	x, y = nt.Relay(b), nt.Relay(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := x.Connect(ctx, nt.TCPAddr(b, y).String()); err != nil {
		b.Fatal(err)
	}
	return x, y
}

const benchSize = 64 << 20

// BenchmarkForwardDirect reads benchSize bytes per op from a source
// service on y through a forward on x, the way a user's program would;
// BenchmarkPerfDirect is the same pair with no tunnel, for the ratio.
func BenchmarkForwardDirect(b *testing.B) {
	x, y := directPair(b)
	zeros := make([]byte, 64<<10)
	src := serve(b, func(c net.Conn) {
		for sent := 0; sent < benchSize; sent += len(zeros) {
			if _, err := c.Write(zeros); err != nil {
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	})
	expose(b, y, "src", src.addr())
	addr := forward(b, x, y, "src")
	buf := make([]byte, 64<<10)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		c := dial(b, addr)
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
		if err != nil || n != benchSize {
			b.Fatalf("read %d of %d: %v", n, benchSize, err)
		}
		c.Close()
	}
}

func BenchmarkPerfDirect(b *testing.B) {
	x, y := directPair(b)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		if _, err := protocol.RunPerf(context.Background(), x.Host(), y.ID(), 0, benchSize); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPerfVersions downloads benchSize bytes per op with perf between
// two overlay nodes joined directly: the stock /perf/1.0.0 stream against
// node.Perf's resumable session (/overlay/perf/1.0.0).
func BenchmarkPerfVersions(b *testing.B) {
	x, y := directPair(b)
	b.Run("perf-1.0.0", func(b *testing.B) {
		b.SetBytes(benchSize)
		for range b.N {
			if _, err := protocol.RunPerf(context.Background(), x.Host(), y.ID(), 0, benchSize); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("overlay-perf-1.0.0", func(b *testing.B) {
		b.SetBytes(benchSize)
		for range b.N {
			if _, err := x.Perf(context.Background(), y.ID().String(), 0, benchSize); err != nil {
				b.Fatal(err)
			}
		}
	})
}
