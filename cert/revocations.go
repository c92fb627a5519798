package cert

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A revocation list's body (kind 0x02, format version 1) is a JSON object:
//
//	version  integer >= 1; each list the CA signs has a higher one
//	issued   integer, Unix seconds the CA signed it
//	serials  array of revoked certificate serials (32 hex digits), sorted, distinct; optional
//	peers    array of revoked peer IDs (base58), sorted, distinct; optional
//	ca       string, base64 of the issuing CA's 32-byte ed25519 public key
//
// The list is cumulative: a newer one holds every entry of the older ones,
// so a node needs only the newest. A list with a lower version than the one
// held is a rollback (see Newer) and must be ignored.
const MaxRevocations = 8192 // serials and peers together

// RevocationList is the CA's signed list of revoked certificates and peers.
// The lookups work on a list that Revoke, Sign or ParseRevocations returned,
// whose entries are not changed afterwards; it is then safe for concurrent
// use.
type RevocationList struct {
	Version uint64
	Issued  time.Time
	Serials []Serial  // sorted, distinct
	Peers   []peer.ID // sorted, distinct
	Issuer  ed25519.PublicKey

	serials map[Serial]struct{}
	peers   map[peer.ID]struct{}
	env     envelope
	raw     []byte
}

type revocationsWire struct {
	Version uint64   `json:"version"`
	Issued  int64    `json:"issued"`
	Serials []string `json:"serials,omitempty"`
	Peers   []string `json:"peers,omitempty"`
	CA      []byte   `json:"ca"`
}

// Revoke adds a serial (when s is not zero) and a peer (when id is not
// empty) to an unsigned copy of l and returns it with the version bumped;
// l may be nil, for the first list. Sign it before use.
func (l *RevocationList) Revoke(s Serial, id peer.ID) *RevocationList {
	n := &RevocationList{Version: 1}
	if l != nil {
		n.Version = l.Version + 1
		n.Serials, n.Peers = slices.Clone(l.Serials), slices.Clone(l.Peers)
	}
	if s != (Serial{}) {
		n.Serials = append(n.Serials, s)
	}
	if id != "" {
		n.Peers = append(n.Peers, id)
	}
	n.normalize()
	return n
}

func (l *RevocationList) normalize() {
	slices.SortFunc(l.Serials, func(a, b Serial) int { return bytes.Compare(a[:], b[:]) })
	l.Serials = slices.Compact(l.Serials)
	slices.Sort(l.Peers)
	l.Peers = slices.Compact(l.Peers)
	l.serials = make(map[Serial]struct{}, len(l.Serials))
	for _, s := range l.Serials {
		l.serials[s] = struct{}{}
	}
	l.peers = make(map[peer.ID]struct{}, len(l.Peers))
	for _, p := range l.Peers {
		l.peers[p] = struct{}{}
	}
}

func (l *RevocationList) validate() error {
	if l.Version == 0 {
		return fmt.Errorf("version 0; the first list is version 1")
	}
	if l.Issued.Unix() <= 0 {
		return fmt.Errorf("issued time %d", l.Issued.Unix())
	}
	if n := len(l.Serials) + len(l.Peers); n > MaxRevocations {
		return fmt.Errorf("%d entries, at most %d", n, MaxRevocations)
	}
	for i, s := range l.Serials {
		if s == (Serial{}) {
			return fmt.Errorf("zero serial")
		}
		if i > 0 && bytes.Compare(l.Serials[i-1][:], s[:]) >= 0 {
			return fmt.Errorf("serials not sorted and distinct at %s", s)
		}
	}
	for i, p := range l.Peers {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("peer ID: %v", err)
		}
		if i > 0 && l.Peers[i-1] >= p {
			return fmt.Errorf("peers not sorted and distinct at %s", p)
		}
	}
	if len(l.Issuer) != ed25519.PublicKeySize {
		return fmt.Errorf("CA public key of %d bytes, want %d", len(l.Issuer), ed25519.PublicKeySize)
	}
	return nil
}

// Sign sets Issuer from key and Issued (if zero) to now, and signs l.
func (l *RevocationList) Sign(key ed25519.PrivateKey, now time.Time) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign revocation list: CA private key of %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	l.normalize()
	if l.Issued.IsZero() {
		l.Issued = now
	}
	l.Issued = l.Issued.Truncate(time.Second)
	l.Issuer = key.Public().(ed25519.PublicKey)
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf("sign revocation list: %w", err)
	}
	w := revocationsWire{Version: l.Version, Issued: l.Issued.Unix(), CA: l.Issuer}
	for _, s := range l.Serials {
		w.Serials = append(w.Serials, s.String())
	}
	for _, p := range l.Peers {
		w.Peers = append(w.Peers, p.String())
	}
	env, b, err := seal(KindRevocations, w, key)
	if err != nil {
		return nil, err
	}
	l.env, l.raw = env, b
	return b, nil
}

// Marshal returns the signed document, nil for a list neither signed nor
// parsed.
func (l *RevocationList) Marshal() []byte { return l.raw }

// ParseRevocations decodes a raw revocation list document. It checks the
// form but not the signature: Verify does.
func ParseRevocations(b []byte) (*RevocationList, error) {
	if _, err := open(b, KindRevocations); err != nil {
		return nil, err
	}
	b = bytes.Clone(b)
	env, err := open(b, KindRevocations)
	if err != nil {
		return nil, err
	}
	var w revocationsWire
	if err := decodeBody(env.body, &w); err != nil {
		return nil, err
	}
	if n := len(w.Serials) + len(w.Peers); n > MaxRevocations {
		return nil, fmt.Errorf("%w: revocation list: %d entries, at most %d", ErrMalformed, n, MaxRevocations)
	}
	if (w.Serials != nil && len(w.Serials) == 0) || (w.Peers != nil && len(w.Peers) == 0) {
		return nil, fmt.Errorf("%w: revocation list: empty array (omit it)", ErrMalformed)
	}
	l := &RevocationList{Version: w.Version, Issued: time.Unix(w.Issued, 0), Issuer: w.CA}
	for _, v := range w.Serials {
		s, err := ParseSerial(v)
		if err != nil {
			return nil, fmt.Errorf("%w: revocation list: %v", ErrMalformed, err)
		}
		if v != s.String() {
			return nil, fmt.Errorf("%w: revocation list: serial %q not in lowercase hex", ErrMalformed, v)
		}
		l.Serials = append(l.Serials, s)
	}
	for _, v := range w.Peers {
		p, err := peer.Decode(v)
		if err != nil {
			return nil, fmt.Errorf("%w: revocation list: peer ID %q: %v", ErrMalformed, v, err)
		}
		if v != p.String() {
			return nil, fmt.Errorf("%w: revocation list: peer ID %q not in canonical form %s", ErrMalformed, v, p)
		}
		l.Peers = append(l.Peers, p)
	}
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf("%w: revocation list: %v", ErrMalformed, err)
	}
	l.normalize() // builds the lookup maps; the order is already checked
	l.env, l.raw = env, b
	return l, nil
}

// Verify checks that l was signed by the CA whose public key is ca. The
// error wraps ErrMalformed, ErrUnknownCA or ErrBadSignature.
func (l *RevocationList) Verify(ca ed25519.PublicKey) error {
	if l == nil || l.env.signed == nil {
		return fmt.Errorf("%w: revocation list neither signed nor parsed", ErrMalformed)
	}
	if len(ca) != ed25519.PublicKeySize || !l.Issuer.Equal(ca) {
		return fmt.Errorf("%w: revocation list issued by CA %s, not %s", ErrUnknownCA, Fingerprint(l.Issuer), Fingerprint(ca))
	}
	if !l.env.check(ca) {
		return fmt.Errorf("%w: revocation list version %d", ErrBadSignature, l.Version)
	}
	return nil
}

// IsRevoked reports whether l revokes c, by its serial or its peer ID. A
// nil list revokes nothing.
func (l *RevocationList) IsRevoked(c *Certificate) bool {
	return l.RevokesSerial(c.Serial) || l.RevokesPeer(c.Peer)
}

// Check returns an error wrapping ErrRevoked when l revokes c, saying
// whether by serial or by peer ID, and nil otherwise. A nil list revokes
// nothing. Run it after Certificate.Verify, with the newest list held.
func (l *RevocationList) Check(c *Certificate) error {
	switch {
	case l.RevokesSerial(c.Serial):
		return fmt.Errorf("%w: certificate %s (%q) by serial, in revocation list version %d", ErrRevoked, c.Serial, c.Name, l.Version)
	case l.RevokesPeer(c.Peer):
		return fmt.Errorf("%w: every certificate of peer %s (%q), in revocation list version %d", ErrRevoked, c.Peer, c.Name, l.Version)
	}
	return nil
}

// RevokesSerial reports whether l lists the serial s.
func (l *RevocationList) RevokesSerial(s Serial) bool {
	if l == nil {
		return false
	}
	_, ok := l.serials[s]
	return ok
}

// RevokesPeer reports whether l lists the peer id: every certificate of
// that peer is revoked.
func (l *RevocationList) RevokesPeer(id peer.ID) bool {
	if l == nil {
		return false
	}
	_, ok := l.peers[id]
	return ok
}

// Newer reports whether l supersedes than: a higher version. A nil than is
// superseded by any list. A list that is not Newer than the one held is
// stale (the same version) or a rollback (a lower one) and is ignored.
func (l *RevocationList) Newer(than *RevocationList) bool {
	return than == nil || l.Version > than.Version
}
