package main

import (
	"fmt"
	"time"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/internal/atomicfile"
	"github.com/overlay-net/overlay/node/trust"
)

func runCAPublish(args []string) error {
	var cf clientFlags
	fs := newFlags("ca publish", "ca publish [--api ADDR] FILE\n\n"+
		"Hands the signed revocation list or policy in FILE ('overlay ca revoke',\n"+
		"'overlay ca policy') to the running node. A node started with --ca-pub\n"+
		"checks it against the CA, keeps it when it is newer than its own, and passes\n"+
		"it on to every member and relay it holds, which do the same: the whole\n"+
		"overlay holds it within seconds. An older or the same version is refused.")
	cf.register(fs, true, 30*time.Second)
	if err := parseArgs(fs, args, 1); err != nil {
		return err
	}
	b, err := atomicfile.ReadCapped(fs.Arg(0), cert.MaxFileSize)
	if err != nil {
		return err
	}
	if _, _, err := cert.Decode(b); err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	c, ctx, cancel, err := cf.client()
	if err != nil {
		return err
	}
	defer cancel()
	res, err := c.Publish(ctx, b)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(res)
	}
	if res.Changed {
		fmt.Printf("published %s version %d: the node holds it and passes it on\n", res.Kind, res.Version)
	} else {
		fmt.Printf("%s version %d: the node held it already\n", res.Kind, res.Version)
	}
	return nil
}

func runCAStatus(args []string) error {
	var cf clientFlags
	fs := newFlags("ca status", "ca status [--api ADDR]\n\n"+
		"Prints the revocation list and policy versions the running node holds, and\n"+
		"what became of the documents it was offered (accepted, stale, rollback,\n"+
		"refused by reason, rate-limited).")
	cf.register(fs, true, 10*time.Second)
	if err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	c, ctx, cancel, err := cf.client()
	if err != nil {
		return err
	}
	defer cancel()
	st, err := c.Trust(ctx)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(st)
	}
	if !st.Enabled {
		fmt.Println("the node has no CA public key (--ca-pub): it holds no revocation list or policy")
		return nil
	}
	fmt.Printf("CA:              %s\n", st.CA)
	fmt.Printf("revocations:     version %d (%d peers, %d serials)\n", st.RevocationsVersion, st.RevokedPeers, st.RevokedSerials)
	fmt.Printf("policy:          version %d\n", st.PolicyVersion)
	fmt.Printf("revoked cut off: %d\n", st.ClosedRevoked)
	fmt.Println("offers:")
	for _, o := range trust.Outcomes {
		fmt.Printf("  %-14s %d\n", o, st.Offers[o])
	}
	return nil
}
