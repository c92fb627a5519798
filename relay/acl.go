package relay

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// ACL is whom a relay serves (--relay-acl).
type ACL string

const (
	// ACLMembers serves only peers that passed the overlay handshake, with
	// uncut circuits. Everyone else gets PERMISSION_DENIED, and strangers'
	// connections are closed after Config.StrangerGrace.
	ACLMembers ACL = "members"
	// ACLOpen also serves any libp2p peer, as a public libp2p relay does,
	// but with stock limits (2 min, 128 KiB per circuit) and a bounded
	// share of the reservations: see strangerResources.
	ACLOpen ACL = "open"
	// ACLAllowlist serves members and the peers listed in Config.Allow, all
	// alike (uncut circuits): the operator vouches for the listed ones.
	ACLAllowlist ACL = "allowlist"
)

// ParseACL checks an --relay-acl value.
func ParseACL(s string) (ACL, error) {
	switch a := ACL(s); a {
	case ACLMembers, ACLOpen, ACLAllowlist:
		return a, nil
	}
	return "", fmt.Errorf("relay ACL must be %q, %q or %q, not %q", ACLMembers, ACLOpen, ACLAllowlist, s)
}

// Allowlist bounds: a list is typed by hand, not a database.
const (
	maxAllowFile    = 1 << 20
	maxAllowEntries = 10000
)

// ReadAllowlist reads the peer IDs of an --relay-allow file.
func ReadAllowlist(path string) ([]peer.ID, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read relay allowlist: %w", err)
	}
	defer f.Close()
	ids, err := ParseAllowlist(f)
	if err != nil {
		return nil, fmt.Errorf("relay allowlist %s: %w", path, err)
	}
	return ids, nil
}

// ParseAllowlist reads peer IDs, one a line; blank lines and text after #
// are ignored.
func ParseAllowlist(r io.Reader) ([]peer.ID, error) {
	var ids []peer.ID
	sc := bufio.NewScanner(io.LimitReader(r, maxAllowFile+1))
	read, line := 0, 0
	for sc.Scan() {
		line++
		read += len(sc.Bytes()) + 1
		if read > maxAllowFile {
			return nil, fmt.Errorf("larger than %d bytes", maxAllowFile)
		}
		s, _, _ := strings.Cut(sc.Text(), "#")
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		id, err := peer.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("line %d: %q is not a peer ID: %w", line, s, err)
		}
		if len(ids) == maxAllowEntries {
			return nil, fmt.Errorf("more than %d peer IDs", maxAllowEntries)
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return ids, nil
}

// Serves reports whether the relay serves p though it is not a member:
// any peer on an open relay, the listed ones on an allowlist relay.
func (c Config) Serves(p peer.ID) bool {
	switch c.ACL {
	case ACLOpen:
		return true
	case ACLAllowlist:
		for _, a := range c.Allow {
			if a == p {
				return true
			}
		}
	}
	return false
}

// memberACL serves members, and on an allowlist relay the listed peers.
type memberACL struct {
	m     Members
	allow map[peer.ID]bool
	vouch func(peer.ID) error // nil: none (WithVouch)
}

func (a memberACL) ok(p peer.ID) bool {
	if a.allow[p] {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), aclWait)
	defer cancel()
	return a.m.IsMember(ctx, p) && (a.vouch == nil || a.vouch(p) == nil)
}

// WithVouch makes the relay check a member once more before it grants it a
// reservation or opens a circuit for it: vouch returns why not (counted and
// logged by its owner), nil to grant. In certificate mode it checks that
// the member's certificate still holds (node/certs): one that expired or
// was revoked since the handshake is refused, PERMISSION_DENIED, as a
// stranger is. On an open relay such a member is served as a stranger.
func WithVouch(vouch func(peer.ID) error) Option {
	return func(o *options) { o.vouch = vouch }
}

func (a memberACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool { return a.ok(p) }

// AllowConnect needs only the source checked: the destination holds a
// reservation, which only those served get.
func (a memberACL) AllowConnect(src peer.ID, _ ma.Multiaddr, _ peer.ID) bool { return a.ok(src) }
