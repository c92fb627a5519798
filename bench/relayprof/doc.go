// Package relayprof profiles where an overlay relay's CPU goes under a relayed
// transfer. Everything runs in this one process; each node is started under
// a pprof label (node=relay, node=src, node=dst) that every goroutine it
// starts inherits (listeners, connections, yamux sessions, stream handlers),
// so the profile splits by node as well as by function:
//
//	go test ./bench/relayprof -run '^$' -bench . -benchtime 20x -cpuprofile cpu.out
//	go tool pprof -top -tagfocus node=relay relayprof.test cpu.out
//	go tool pprof -tags relayprof.test cpu.out     # share of each node
//
// RELAYPROF_BUFFER sets the relay's copy buffer (bytes) to profile another
// size; the default is the relay's own default.
package relayprof
