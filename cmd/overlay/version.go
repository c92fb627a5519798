package main

import (
	"fmt"

	"github.com/overlay-net/overlay/internal/buildinfo"
)

func runVersion(args []string) error {
	fs := newFlags("version", "version [--json]")
	asJSON := fs.Bool("json", false, "print JSON for programs")
	if err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	in := buildinfo.Get()
	if *asJSON {
		return printJSON(in)
	}
	fmt.Println(in)
	return nil
}
