package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/internal/atomicfile"
)

const caUsage = `usage: overlay ca COMMAND [flags] ARGS

Run a network certificate authority (CA): it signs member certificates
(a peer ID bound to a name, groups and a validity window), the revocation
list and the access policy. Keep the CA directory on an offline machine:
checking a document takes only the public key (ca.pub), never ca.key.
A node started with --ca-pub FILE keeps the newest revocation list and
policy it is handed or offered by a member, passes them on to every member
and relay it holds, closes its connections to revoked members and applies
the policy (docs/revocation.md).

  overlay ca init DIR                            new CA key pair in DIR (ca.key 0600, ca.pub)
  overlay ca sign --ca DIR --peer PEER-ID --name NAME [--groups a,b] [--expires 720h] [--out FILE]
                                                 a member certificate
  overlay ca revoke --ca DIR PEER-ID|SERIAL      add to DIR/revocations.pem, version bumped
  overlay ca policy --ca DIR [--out FILE] SOURCE sign the access policy in SOURCE (JSON) as DIR/policy.pem
  overlay ca show [--ca-pub FILE] FILE           print a certificate, revocation list, policy or CA key
  overlay ca publish [--api ADDR] FILE           hand a revocation list or policy to the running node,
                                                 which spreads it through the overlay
  overlay ca status [--api ADDR]                 the list and policy the running node holds, and refusals

Run 'overlay ca COMMAND --help' for a command's flags.
`

// Files of a CA directory.
const (
	caKeyFile         = "ca.key"          // the private key: 0600, stays offline
	caPubFile         = "ca.pub"          // the public key every node is given
	caRevocationsFile = "revocations.pem" // the newest signed revocation list
	caPolicyFile      = "policy.pem"      // the newest signed policy
)

// certBackdate is how long before its signing a certificate becomes valid,
// so that a member whose clock runs a little behind the CA's can use it at once.
const certBackdate = 5 * time.Minute

// maxPolicySource caps the policy source file 'ca policy' reads.
const maxPolicySource = 1 << 20

// caSubs are the ca commands, in usage order.
var caSubs = []string{"init", "sign", "revoke", "policy", "show", "publish", "status"}

var caCommands = map[string]func(args []string) error{
	"init":   runCAInit,
	"sign":   runCASign,
	"revoke": runCARevoke,
	"policy": runCAPolicy,
	"show":   runCAShow,
	// publish and status talk to a running node (catrust.go).
	"publish": runCAPublish,
	"status":  runCAStatus,
}

// runCA dispatches 'overlay ca COMMAND'. Each ca command has a flag set of
// its own; when capture asks for the flags of ca, it gets their union.
func runCA(args []string) error {
	if capture != nil {
		return parse(caFlagUnion(), args)
	}
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, caUsage)
		return errUsage
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		fmt.Print(caUsage)
		return nil
	}
	cmd, ok := caCommands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "overlay ca: unknown command %q\n\n%s", args[0], caUsage)
		return errUsage
	}
	return cmd(args[1:])
}

// caFlagUnion returns one flag set holding every flag of every ca command,
// taken from the commands' own flag sets (through capture), for completion
// and the check of OVERLAY_* names. Call it only while capture is set.
func caFlagUnion() *flag.FlagSet {
	union := newFlags("ca", "ca COMMAND [flags] ARGS")
	outer := capture
	defer func() { capture = outer }()
	capture = func(fs *flag.FlagSet) {
		fs.VisitAll(func(f *flag.Flag) {
			if union.Lookup(f.Name) == nil {
				union.Var(f.Value, f.Name, f.Usage)
			}
		})
	}
	for _, sub := range caSubs {
		_ = caCommands[sub](nil)
	}
	return union
}

func runCAInit(args []string) error {
	fs := newFlags("ca init", "ca init DIR\n\nMakes a new CA key pair in DIR (created 0700 if missing): ca.key (0600) and\nca.pub. Refuses to overwrite either. Prints the public key.")
	if err := parseArgs(fs, args, 1); err != nil {
		return err
	}
	dir := fs.Arg(0)
	for _, f := range []string{caKeyFile, caPubFile} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("%s exists; not overwriting a CA", filepath.Join(dir, f))
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("make CA directory: %w", err)
	}
	pub, priv, err := cert.NewCA()
	if err != nil {
		return err
	}
	if err := writeNew(filepath.Join(dir, caKeyFile), cert.MarshalPrivateKey(priv), 0o600); err != nil {
		return fmt.Errorf("write CA private key: %w", err)
	}
	if err := writeNew(filepath.Join(dir, caPubFile), cert.MarshalPublicKey(pub), 0o644); err != nil {
		return fmt.Errorf("write CA public key: %w", err)
	}
	fmt.Printf("CA public key: %s\nfingerprint:   %s\n", cert.EncodePublicKey(pub), cert.Fingerprint(pub))
	fmt.Fprintf(os.Stderr, "wrote %s (keep it offline, never on a node) and %s (the public key that checks what the CA signs)\n",
		filepath.Join(dir, caKeyFile), filepath.Join(dir, caPubFile))
	return nil
}

// writeNew creates path with data and mode perm; it never overwrites.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists; not overwriting it", path)
		}
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// loadCA reads the key pair of a CA directory.
func loadCA(dir string) (ed25519.PrivateKey, error) {
	if dir == "" {
		return nil, fmt.Errorf("--ca DIR is required (a directory made by 'overlay ca init')")
	}
	path := filepath.Join(dir, caKeyFile)
	b, err := atomicfile.ReadCapped(path, 4<<10)
	if err != nil {
		return nil, fmt.Errorf("read CA private key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(os.Stderr, "warning: %s is readable by others (mode %04o); chmod 600 it\n", path, fi.Mode().Perm())
	}
	priv, err := cert.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return priv, nil
}

// readDoc reads a document file (PEM or raw) and returns its kind and raw
// bytes.
func readDoc(path string) (byte, []byte, error) {
	b, err := atomicfile.ReadCapped(path, cert.MaxFileSize)
	if err != nil {
		return 0, nil, err
	}
	kind, doc, err := cert.Decode(b)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", path, err)
	}
	return kind, doc, nil
}

// writeDoc writes a signed document PEM-armoured to path, or to stdout for
// "-".
func writeDoc(path string, doc []byte) error {
	p, err := cert.EncodePEM(doc)
	if err != nil {
		return err
	}
	if path == "-" {
		_, err := os.Stdout.Write(p)
		return err
	}
	return atomicfile.Write(path, p, 0o644)
}

func runCASign(args []string) error {
	fs := newFlags("ca sign", "ca sign --ca DIR --peer PEER-ID --name NAME [flags]\n\n"+
		"Issues a member certificate binding PEER-ID to NAME and groups, valid from\n"+
		"5 minutes ago (for clocks a little behind) until --expires from now.")
	caDir := fs.String("ca", "", "CA directory (from 'overlay ca init'); required")
	peerFlag := fs.String("peer", "", "the member's peer ID ('overlay id --key FILE' prints it); required")
	name := fs.String("name", "", "the member's name: a DNS label (1-63 lowercase letters, digits, '-'); required")
	groups := fs.String("groups", "", "comma-separated groups, each a DNS label (at most 32)")
	expires := fs.Duration("expires", 720*time.Hour, "how long from now the certificate is valid")
	out := fs.String("out", "-", "write the certificate (PEM) to this file; - for stdout")
	ipv4 := fs.String("ipv4", "", "the member's IPv4 overlay address, in 100.64.0.0/10 (optional)")
	ipv6 := fs.String("ipv6", "", "the member's IPv6 overlay address, in fc00::/7 (optional)")
	if err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	if *peerFlag == "" || *name == "" {
		fs.Usage()
		return errUsage
	}
	id, err := peer.Decode(*peerFlag)
	if err != nil {
		return fmt.Errorf("--peer %q: not a peer ID: %w", *peerFlag, err)
	}
	if err := cert.ValidName(*name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	if *expires <= 0 {
		return fmt.Errorf("--expires %s: must be positive", *expires)
	}
	var gs []string
	for g := range strings.SplitSeq(*groups, ",") {
		if g = strings.TrimSpace(g); g == "" {
			continue
		}
		if err := cert.ValidName(g); err != nil {
			return fmt.Errorf("--groups: %w", err)
		}
		gs = append(gs, g)
	}
	serial, err := cert.NewSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	c := &cert.Certificate{Serial: serial, Peer: id, Name: *name, Groups: gs,
		NotBefore: now.Add(-certBackdate), NotAfter: now.Add(*expires)}
	if c.IPv4, err = overlayAddr("--ipv4", *ipv4, netip.MustParsePrefix("100.64.0.0/10")); err != nil {
		return err
	}
	if c.IPv6, err = overlayAddr("--ipv6", *ipv6, netip.MustParsePrefix("fc00::/7")); err != nil {
		return err
	}
	priv, err := loadCA(*caDir)
	if err != nil {
		return err
	}
	doc, err := c.Sign(priv)
	if err != nil {
		return err
	}
	if err := writeDoc(*out, doc); err != nil {
		return fmt.Errorf("write certificate: %w", err)
	}
	dest := *out
	if dest == "-" {
		dest = "stdout"
	}
	fmt.Fprintf(os.Stderr, "signed %q (peer %s, serial %s) valid until %s: wrote %s\n",
		c.Name, c.Peer, c.Serial, c.NotAfter.UTC().Format(time.RFC3339), dest)
	return nil
}

// overlayAddr parses an optional address flag that must lie in prefix.
func overlayAddr(flagName, v string, prefix netip.Prefix) (netip.Addr, error) {
	if v == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: %w", flagName, err)
	}
	if !prefix.Contains(a) {
		return netip.Addr{}, fmt.Errorf("%s %s: not in the overlay range %s", flagName, a, prefix)
	}
	return a, nil
}

// loadRevocations reads the CA directory's list, checked against its key;
// nil when there is none yet.
func loadRevocations(dir string, pub ed25519.PublicKey) (*cert.RevocationList, error) {
	path := filepath.Join(dir, caRevocationsFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	_, doc, err := readDoc(path)
	if err != nil {
		return nil, fmt.Errorf("read revocation list: %w", err)
	}
	l, err := cert.ParseRevocations(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := l.Verify(pub); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

func runCARevoke(args []string) error {
	fs := newFlags("ca revoke", "ca revoke --ca DIR PEER-ID|SERIAL\n\n"+
		"Adds a peer ID (every certificate of that peer) or one certificate's serial\n"+
		"(32 hex digits, 'overlay ca show' prints it) to DIR/"+caRevocationsFile+", signed\n"+
		"with the next version; 'overlay ca show' prints it.")
	caDir := fs.String("ca", "", "CA directory (from 'overlay ca init'); required")
	if err := parseArgs(fs, args, 1); err != nil {
		return err
	}
	var serial cert.Serial
	var id peer.ID
	arg := fs.Arg(0)
	if s, err := cert.ParseSerial(arg); err == nil {
		serial = s
	} else if id, err = peer.Decode(arg); err != nil {
		return fmt.Errorf("%q is neither a serial (32 hex digits) nor a peer ID", arg)
	}
	priv, err := loadCA(*caDir)
	if err != nil {
		return err
	}
	held, err := loadRevocations(*caDir, priv.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	if (id != "" && held.RevokesPeer(id)) || (serial != cert.Serial{} && held.RevokesSerial(serial)) {
		fmt.Fprintf(os.Stderr, "%s is already revoked in version %d of %s; nothing changed\n",
			arg, held.Version, filepath.Join(*caDir, caRevocationsFile))
		return nil
	}
	l := held.Revoke(serial, id)
	doc, err := l.Sign(priv, time.Now())
	if err != nil {
		return err
	}
	path := filepath.Join(*caDir, caRevocationsFile)
	if err := writeDoc(path, doc); err != nil {
		return fmt.Errorf("write revocation list: %w", err)
	}
	fmt.Fprintf(os.Stderr, "revoked %s: wrote %s (version %d: %d serials, %d peers)\n",
		arg, path, l.Version, len(l.Serials), len(l.Peers))
	return nil
}

// policySource is what 'ca policy' reads: a policy without the fields the
// CA fills in (version, issued, ca).
type policySource struct {
	Default string      `json:"default"`
	Rules   []cert.Rule `json:"rules"`
}

func runCAPolicy(args []string) error {
	fs := newFlags("ca policy", "ca policy --ca DIR [--out FILE] SOURCE\n\n"+
		"Signs the access policy in SOURCE with the version after the one in\n"+
		"DIR/"+caPolicyFile+" and writes it there. SOURCE is JSON:\n\n"+
		"  {\"default\": \"allow\", \"rules\": [{\"name\": \"ops-ssh\", \"action\": \"allow\",\n"+
		"    \"from\": [\"group:ops\"], \"to\": [\"*\"], \"messages\": true,\n"+
		"    \"services\": [\"ssh\"], \"ports\": [\"tcp/22\", \"udp/6000-6100\", \"icmp\"]}]}\n\n"+
		"default is allow or deny (allow when absent). Rules are tried in order; the\n"+
		"first whose from, to and kind (messages, tunnel services, IP ports; \"*\"\n"+
		"for any) match decides. Selectors: *, group:G, name:N, peer:ID.")
	caDir := fs.String("ca", "", "CA directory (from 'overlay ca init'); required")
	out := fs.String("out", "", "also write the signed policy to this file (- for stdout)")
	if err := parseArgs(fs, args, 1); err != nil {
		return err
	}
	b, err := atomicfile.ReadCapped(fs.Arg(0), maxPolicySource)
	if err != nil {
		return fmt.Errorf("read policy source: %w", err)
	}
	var src policySource
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&src); err != nil {
		return fmt.Errorf("policy source %s: %w", fs.Arg(0), err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("policy source %s: data after the JSON object", fs.Arg(0))
	}
	if src.Default == "" {
		src.Default = cert.Allow
	}
	priv, err := loadCA(*caDir)
	if err != nil {
		return err
	}
	path := filepath.Join(*caDir, caPolicyFile)
	p := &cert.Policy{Version: 1, Default: src.Default, Rules: src.Rules}
	if _, err := os.Stat(path); err == nil {
		_, doc, err := readDoc(path)
		if err != nil {
			return fmt.Errorf("read held policy: %w", err)
		}
		held, err := cert.ParsePolicy(doc)
		if err == nil {
			err = held.Verify(priv.Public().(ed25519.PublicKey))
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		p.Version = held.Version + 1
	}
	doc, err := p.Sign(priv, time.Now())
	if err != nil {
		return err
	}
	if err := writeDoc(path, doc); err != nil {
		return fmt.Errorf("write policy: %w", err)
	}
	if *out != "" {
		if err := writeDoc(*out, doc); err != nil {
			return fmt.Errorf("write policy: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "signed policy version %d (%d rules, default %s): wrote %s\n", p.Version, len(p.Rules), p.Default, path)
	return nil
}

func runCAShow(args []string) error {
	fs := newFlags("ca show", "ca show [--ca-pub FILE] FILE\n\n"+
		"Prints a certificate, revocation list, policy (PEM or raw) or CA public key.\n"+
		"With --ca-pub, also checks its CA signature (and a certificate's validity\n"+
		"now); exit 1 if the check fails.")
	caPub := fs.String("ca-pub", "", "CA public key file (ca.pub) to check the signature against")
	if err := parseArgs(fs, args, 1); err != nil {
		return err
	}
	var pub ed25519.PublicKey
	if *caPub != "" {
		b, err := atomicfile.ReadCapped(*caPub, 4<<10)
		if err != nil {
			return fmt.Errorf("read --ca-pub: %w", err)
		}
		if pub, err = cert.ParsePublicKey(b); err != nil {
			return fmt.Errorf("--ca-pub %s: %w", *caPub, err)
		}
	}
	if b, err := atomicfile.ReadCapped(fs.Arg(0), cert.MaxFileSize); err == nil && bytes.Contains(b, []byte(cert.PEMCAPublic)) {
		k, err := cert.ParsePublicKey(b)
		if err != nil {
			return fmt.Errorf("%s: %w", fs.Arg(0), err)
		}
		fmt.Printf("CA public key\nkey:         %s\nfingerprint: %s\n", cert.EncodePublicKey(k), cert.Fingerprint(k))
		return nil
	}
	kind, doc, err := readDoc(fs.Arg(0))
	if err != nil {
		return err
	}
	now := time.Now()
	var check error
	switch kind {
	case cert.KindCertificate:
		c, err := cert.ParseCertificate(doc)
		if err != nil {
			return err
		}
		showCertificate(c, now)
		if pub != nil {
			check = c.Verify(pub, c.Peer, now)
		}
	case cert.KindRevocations:
		l, err := cert.ParseRevocations(doc)
		if err != nil {
			return err
		}
		showRevocations(l)
		if pub != nil {
			check = l.Verify(pub)
		}
	case cert.KindPolicy:
		p, err := cert.ParsePolicy(doc)
		if err != nil {
			return err
		}
		showPolicy(p)
		if pub != nil {
			check = p.Verify(pub)
		}
	default:
		return fmt.Errorf("%s: a document of %s", fs.Arg(0), cert.KindName(kind))
	}
	switch {
	case pub == nil:
		fmt.Println("check:       not checked (no --ca-pub)")
	case check != nil:
		fmt.Printf("check:       FAILED (%s): %v\n", cert.ReasonOf(check), check)
		return fmt.Errorf("%s: %w", fs.Arg(0), check)
	default:
		fmt.Printf("check:       valid, signed by CA %s\n", cert.Fingerprint(pub))
	}
	return nil
}

func showCertificate(c *cert.Certificate, now time.Time) {
	fmt.Printf("certificate\nname:        %s\npeer:        %s\n", c.Name, c.Peer)
	fmt.Printf("groups:      %s\n", orDash(strings.Join(c.Groups, ", ")))
	fmt.Printf("serial:      %s\n", c.Serial)
	var state string
	switch {
	case now.Before(c.NotBefore):
		state = "not yet valid"
	case !now.Before(c.NotAfter):
		state = "expired"
	default:
		state = fmt.Sprintf("valid now, expires in %s", c.NotAfter.Sub(now).Round(time.Minute))
	}
	fmt.Printf("valid:       %s to %s (%s)\n", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), state)
	if c.IPv4.IsValid() {
		fmt.Printf("ipv4:        %s\n", c.IPv4)
	}
	if c.IPv6.IsValid() {
		fmt.Printf("ipv6:        %s\n", c.IPv6)
	}
	fmt.Printf("issuer:      CA %s (%s)\n", cert.Fingerprint(c.Issuer), cert.EncodePublicKey(c.Issuer))
}

func showRevocations(l *cert.RevocationList) {
	fmt.Printf("revocation list\nversion:     %d\nissued:      %s\n", l.Version, l.Issued.UTC().Format(time.RFC3339))
	fmt.Printf("serials:     %d\n", len(l.Serials))
	for _, s := range l.Serials {
		fmt.Printf("  %s\n", s)
	}
	fmt.Printf("peers:       %d\n", len(l.Peers))
	for _, p := range l.Peers {
		fmt.Printf("  %s\n", p)
	}
	fmt.Printf("issuer:      CA %s\n", cert.Fingerprint(l.Issuer))
}

func showPolicy(p *cert.Policy) {
	fmt.Printf("policy\nversion:     %d\nissued:      %s\ndefault:     %s\nrules:       %d\n",
		p.Version, p.Issued.UTC().Format(time.RFC3339), p.Default, len(p.Rules))
	for _, r := range p.Rules {
		var covers []string
		if r.Messages {
			covers = append(covers, "messages")
		}
		if len(r.Services) > 0 {
			covers = append(covers, "services "+strings.Join(r.Services, ","))
		}
		if len(r.Ports) > 0 {
			covers = append(covers, "ports "+strings.Join(r.Ports, ","))
		}
		if len(r.Relay) > 0 {
			covers = append(covers, "relay "+strings.Join(r.Relay, ","))
		}
		fmt.Printf("  %s: %s from %s to %s: %s\n", r.Name, r.Action,
			strings.Join(r.From, ","), strings.Join(r.To, ","), strings.Join(covers, "; "))
	}
	fmt.Printf("issuer:      CA %s\n", cert.Fingerprint(p.Issuer))
}
