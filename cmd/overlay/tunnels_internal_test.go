package main

import "testing"

// A last error of several lines keeps to its row of the forward --list
// table.
func TestOneLine(t *testing.T) {
	in := "failed to dial: all dials failed\n  * [/ip4/1.2.3.4/tcp/1] connection refused\n\t* [/ip4/5.6.7.8/tcp/2] timeout"
	want := "failed to dial: all dials failed * [/ip4/1.2.3.4/tcp/1] connection refused * [/ip4/5.6.7.8/tcp/2] timeout"
	if got := oneLine(in); got != want {
		t.Errorf("oneLine = %q", got)
	}
}
