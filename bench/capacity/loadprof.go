package main

import (
	"net/http"
	_ "net/http/pprof" // served only when LOAD_PPROF names an address
	"os"
)

// serveLoadProfile serves Go's profiler from load process 0 at $LOAD_PPROF
// (a loopback address), to see where the load generator's CPU goes.
func serveLoadProfile(proc int) {
	addr := os.Getenv("LOAD_PPROF")
	if addr == "" || proc != 0 {
		return
	}
	go http.ListenAndServe(addr, nil)
}
