package main

import (
	"fmt"

	"github.com/overlay-net/overlay/node/identity"
)

// runPSK makes a pre-shared key file for --psk: 'overlay psk new FILE'.
func runPSK(args []string) error {
	fs := newFlags("psk", "psk new FILE")
	if err := parseArgs(fs, args, 2); err != nil {
		return err
	}
	if fs.Arg(0) != "new" {
		fmt.Fprintf(fs.Output(), "overlay psk: unknown subcommand %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	if err := identity.WritePSK(fs.Arg(1)); err != nil {
		return err
	}
	fmt.Printf("wrote %s: give it to every node of the network (--psk %s), and to no one else\n", fs.Arg(1), fs.Arg(1))
	return nil
}
