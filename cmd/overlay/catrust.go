package main

import (
	"context"
	"fmt"
	"time"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/internal/atomicfile"
	"github.com/overlay-net/overlay/node/api"
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
	return fetch(&cf, func(ctx context.Context, c *api.Client) (api.PublishResult, error) {
		return c.Publish(ctx, b)
	}, func(res api.PublishResult) error {
		if res.Changed {
			fmt.Printf("published %s version %d: the node holds it and passes it on\n", res.Kind, res.Version)
		} else {
			fmt.Printf("%s version %d: the node held it already\n", res.Kind, res.Version)
		}
		return nil
	})
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
	return fetch(&cf, func(ctx context.Context, c *api.Client) (api.TrustReply, error) {
		return c.Trust(ctx)
	}, func(st api.TrustReply) error {
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
	})
}

// printTrust is the status lines of a node given a CA public key.
func printTrust(st trust.Status) {
	refused := st.Offers[trust.Malformed] + st.Offers[trust.UnknownCA] + st.Offers[trust.BadSignature]
	fmt.Printf("CA %s: revocation list version %d (%d peers, %d serials), policy version %d\n",
		st.CA, st.RevocationsVersion, st.RevokedPeers, st.RevokedSerials, st.PolicyVersion)
	if refused+st.Offers[trust.Rollback]+st.Offers[trust.RateLimited]+st.ClosedRevoked > 0 {
		fmt.Printf("  revoked peers cut off %d; offers refused %d, older (rollback) %d, rate-limited %d ('overlay ca status')\n",
			st.ClosedRevoked, refused, st.Offers[trust.Rollback], st.Offers[trust.RateLimited])
	}
}
