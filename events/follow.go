package events

import (
	"context"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
)

// BufSize is each Follow subscription's queue: the bus blocks an emitter
// while a subscriber's queue is full, so it is sized for bursts.
const BufSize = 256

// Follow subscribes to evtType on bus and calls fn with every event, in
// order, from one goroutine that run starts (so its owner can wait for it),
// until ctx is done or the bus closes the subscription. The subscription
// exists when Follow returns: no event emitted after that is missed.
func Follow(ctx context.Context, bus event.Bus, evtType any, run func(func()), fn func(any)) error {
	sub, err := bus.Subscribe(evtType, eventbus.BufSize(BufSize))
	if err != nil {
		return err
	}
	run(func() {
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				fn(e)
			}
		}
	})
	return nil
}
