package main

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

// readLine at and around its maximum, with every kind of line end, and a
// long line followed by more: nothing after a long line is lost.
func TestReadLine(t *testing.T) {
	const max = 100 << 10 // over the reader's 64 KiB buffer
	x, y := strings.Repeat("x", max), strings.Repeat("y", max+1)
	in := "a\r\n" + x + "\n" + x + "\r\n" + y + "\n\nb\n" + y + "\r\nlast"
	r := bufio.NewReaderSize(strings.NewReader(in), 64<<10)
	want := []struct {
		line string
		err  error
	}{{"a", nil}, {x, nil}, {x, nil}, {"", errLongLine}, {"", nil}, {"b", nil}, {"", errLongLine}, {"last", io.EOF}, {"", io.EOF}}
	for i, w := range want {
		line, err := readLine(r, max)
		if string(line) != w.line || !errors.Is(err, w.err) && err != w.err {
			t.Fatalf("line %d: %d bytes, %v; want %d bytes, %v", i+1, len(line), err, len(w.line), w.err)
		}
	}
}
