package cert

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A certificate's body (kind 0x01, format version 1) is a JSON object:
//
//	serial      string, 32 lowercase hex digits (16 random bytes)
//	peer        string, the member's libp2p peer ID (base58)
//	name        string, a DNS label (see ValidName), for NAME.overlay in DNS
//	groups      array of at most MaxGroups distinct DNS labels, sorted; optional
//	not_before  integer, Unix seconds; valid from this second on
//	not_after   integer, Unix seconds; not valid at or after it
//	ipv4        string, the member's IPv4 overlay address; optional
//	ipv6        string, the member's IPv6 overlay address; optional
//	ca          string, base64 of the issuing CA's 32-byte ed25519 public key
//
// The certificate binds the peer ID, not a key of its own: the libp2p
// connection already proves that the remote holds the peer ID's key, so a
// verifier checks the binding with Verify and nothing more.
const (
	MaxGroups   = 32
	MaxLabelLen = 63 // a DNS label
)

// Serial identifies one certificate: 16 random bytes, written in hex.
type Serial [16]byte

// NewSerial returns a random serial.
func NewSerial() (Serial, error) {
	var s Serial
	if _, err := rand.Read(s[:]); err != nil {
		return Serial{}, fmt.Errorf("new serial: %w", err)
	}
	return s, nil
}

func (s Serial) String() string { return hex.EncodeToString(s[:]) }

// ParseSerial parses 32 hex digits.
func ParseSerial(v string) (Serial, error) {
	var s Serial
	if len(v) != 2*len(s) {
		return Serial{}, fmt.Errorf("serial %q: want %d hex digits", v, 2*len(s))
	}
	if _, err := hex.Decode(s[:], []byte(v)); err != nil {
		return Serial{}, fmt.Errorf("serial %q: %v", v, err)
	}
	return s, nil
}

// ValidName reports whether name is safe as a member name or a group: a DNS
// label of 1 to 63 lowercase letters, digits and '-', neither starting nor
// ending with '-'. Lowercase only, because DNS is case-insensitive: two names
// that differ only in case would be one name in NAME.overlay.
func ValidName(name string) error {
	if name == "" || len(name) > MaxLabelLen {
		return fmt.Errorf("name must be 1 to %d characters, not %d", MaxLabelLen, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("name %q: character %q not allowed (lowercase letters, digits, '-')", name, c)
		}
	}
	if name[0] == '-' || name[len(name)-1] == '-' {
		return fmt.Errorf("name %q: starts or ends with '-'", name)
	}
	return nil
}

// Certificate binds a member's peer ID to its name, groups, overlay
// addresses and a validity window, under a CA's signature.
type Certificate struct {
	Serial    Serial
	Peer      peer.ID
	Name      string
	Groups    []string // sorted, distinct
	NotBefore time.Time
	NotAfter  time.Time
	IPv4      netip.Addr // the zero Addr when absent
	IPv6      netip.Addr // the zero Addr when absent
	// Issuer is the public key of the CA that signed the certificate, as
	// the certificate says; Verify checks the signature.
	Issuer ed25519.PublicKey

	env envelope // set by Sign and ParseCertificate
	raw []byte
}

type certWire struct {
	Serial    string   `json:"serial"`
	Peer      string   `json:"peer"`
	Name      string   `json:"name"`
	Groups    []string `json:"groups,omitempty"`
	NotBefore int64    `json:"not_before"`
	NotAfter  int64    `json:"not_after"`
	IPv4      string   `json:"ipv4,omitempty"`
	IPv6      string   `json:"ipv6,omitempty"`
	CA        []byte   `json:"ca"`
}

// validate checks the fields of c as a signer and a reader both require.
func (c *Certificate) validate() error {
	if c.Serial == (Serial{}) {
		return fmt.Errorf("serial is zero")
	}
	if err := c.Peer.Validate(); err != nil {
		return fmt.Errorf("peer ID: %v", err)
	}
	if err := ValidName(c.Name); err != nil {
		return err
	}
	if err := validGroups(c.Groups); err != nil {
		return err
	}
	if c.NotBefore.Unix() <= 0 || !c.NotAfter.After(c.NotBefore) {
		return fmt.Errorf("validity window %d..%d: want 0 < not_before < not_after", c.NotBefore.Unix(), c.NotAfter.Unix())
	}
	if c.IPv4.IsValid() && (!c.IPv4.Is4() || c.IPv4.IsUnspecified()) {
		return fmt.Errorf("ipv4 %s is not an IPv4 unicast address", c.IPv4)
	}
	if c.IPv6.IsValid() && (!c.IPv6.Is6() || c.IPv6.Is4In6() || c.IPv6.IsUnspecified() || c.IPv6.Zone() != "") {
		return fmt.Errorf("ipv6 %s is not an IPv6 unicast address", c.IPv6)
	}
	if len(c.Issuer) != ed25519.PublicKeySize {
		return fmt.Errorf("CA public key of %d bytes, want %d", len(c.Issuer), ed25519.PublicKeySize)
	}
	return nil
}

func validGroups(gs []string) error {
	if len(gs) > MaxGroups {
		return fmt.Errorf("%d groups, at most %d", len(gs), MaxGroups)
	}
	for i, g := range gs {
		if err := ValidName(g); err != nil {
			return fmt.Errorf("group: %v", err)
		}
		if i > 0 && gs[i-1] >= g {
			return fmt.Errorf("groups not sorted and distinct at %q", g)
		}
	}
	return nil
}

// NormalizeGroups sorts groups and drops duplicates, as a certificate
// stores them.
func NormalizeGroups(gs []string) []string {
	gs = slices.Clone(gs)
	slices.Sort(gs)
	return slices.Compact(gs)
}

// Sign fills in Issuer from key, checks c and signs it, after which
// Marshal returns the document and Verify works on c. Groups are
// normalized first.
func (c *Certificate) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign certificate: CA private key of %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	c.Groups = NormalizeGroups(c.Groups)
	if len(c.Groups) == 0 {
		c.Groups = nil
	}
	c.NotBefore, c.NotAfter = c.NotBefore.Truncate(time.Second), c.NotAfter.Truncate(time.Second)
	c.Issuer = key.Public().(ed25519.PublicKey)
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	w := certWire{
		Serial: c.Serial.String(), Peer: c.Peer.String(), Name: c.Name, Groups: c.Groups,
		NotBefore: c.NotBefore.Unix(), NotAfter: c.NotAfter.Unix(), CA: c.Issuer,
	}
	if c.IPv4.IsValid() {
		w.IPv4 = c.IPv4.String()
	}
	if c.IPv6.IsValid() {
		w.IPv6 = c.IPv6.String()
	}
	env, b, err := seal(KindCertificate, w, key)
	if err != nil {
		return nil, err
	}
	c.env, c.raw = env, b
	return b, nil
}

// Marshal returns the signed document, nil for a certificate neither
// signed nor parsed.
func (c *Certificate) Marshal() []byte { return c.raw }

// ParseCertificate decodes a raw certificate document (see Decode for
// files). It checks the form of every field but not the signature, the
// validity window or the peer: Verify does.
func ParseCertificate(b []byte) (*Certificate, error) {
	if _, err := open(b, KindCertificate); err != nil {
		return nil, err
	}
	b = bytes.Clone(b) // the certificate keeps its bytes; the caller may reuse b
	env, err := open(b, KindCertificate)
	if err != nil {
		return nil, err
	}
	var w certWire
	if err := decodeBody(env.body, &w); err != nil {
		return nil, err
	}
	c := &Certificate{
		Name: w.Name, Groups: w.Groups, Issuer: w.CA,
		NotBefore: time.Unix(w.NotBefore, 0), NotAfter: time.Unix(w.NotAfter, 0),
	}
	if c.Serial, err = ParseSerial(w.Serial); err != nil {
		return nil, fmt.Errorf("%w: certificate: %v", ErrMalformed, err)
	}
	if c.Peer, err = peer.Decode(w.Peer); err != nil {
		return nil, fmt.Errorf("%w: certificate: peer ID: %v", ErrMalformed, err)
	}
	if w.Groups != nil && len(w.Groups) == 0 {
		return nil, fmt.Errorf("%w: certificate: empty groups array (omit it)", ErrMalformed)
	}
	for _, a := range []struct {
		s   string
		dst *netip.Addr
	}{{w.IPv4, &c.IPv4}, {w.IPv6, &c.IPv6}} {
		if a.s == "" {
			continue
		}
		if *a.dst, err = netip.ParseAddr(a.s); err != nil {
			return nil, fmt.Errorf("%w: certificate: %v", ErrMalformed, err)
		}
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%w: certificate: %v", ErrMalformed, err)
	}
	// One spelling per value, as Sign writes it.
	if w.Serial != c.Serial.String() || w.Peer != c.Peer.String() ||
		(c.IPv4.IsValid() && w.IPv4 != c.IPv4.String()) || (c.IPv6.IsValid() && w.IPv6 != c.IPv6.String()) {
		return nil, fmt.Errorf("%w: certificate: a serial, peer ID or address not in canonical form", ErrMalformed)
	}
	c.env, c.raw = env, b
	return c, nil
}

// Verify checks that c was signed by the CA whose public key is ca, that it
// binds id, and that it is valid at now. The error wraps ErrMalformed,
// ErrUnknownCA, ErrBadSignature, ErrPeerMismatch, ErrNotYetValid or
// ErrExpired (ReasonOf maps it to a Reason). Revocation is the caller's
// check (RevocationList.Check): the list changes, the certificate not.
func (c *Certificate) Verify(ca ed25519.PublicKey, id peer.ID, now time.Time) error {
	if c == nil || c.env.signed == nil {
		return fmt.Errorf("%w: certificate neither signed nor parsed", ErrMalformed)
	}
	if len(ca) != ed25519.PublicKeySize || !c.Issuer.Equal(ca) {
		return fmt.Errorf("%w: issued by CA %s, not %s", ErrUnknownCA, Fingerprint(c.Issuer), Fingerprint(ca))
	}
	if !c.env.check(ca) {
		return fmt.Errorf("%w: certificate %s", ErrBadSignature, c.Serial)
	}
	if id != c.Peer {
		return fmt.Errorf("%w: certificate %q is for %s, presented by %s", ErrPeerMismatch, c.Name, c.Peer, id)
	}
	if now.Before(c.NotBefore) {
		return fmt.Errorf("%w: certificate %q is valid from %s", ErrNotYetValid, c.Name, c.NotBefore.UTC().Format(time.RFC3339))
	}
	if !now.Before(c.NotAfter) {
		return fmt.Errorf("%w: certificate %q expired at %s", ErrExpired, c.Name, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// Member returns who c names, for the policy.
func (c *Certificate) Member() Member {
	return Member{Peer: c.Peer, Name: c.Name, Groups: c.Groups}
}
