// Package trust keeps what a node in certificate mode trusts beyond its
// own configuration: the newest revocation list and access policy signed
// by the network's CA that it has seen. A Store holds, checks and persists
// them; Gossip (gossip.go) spreads them over /overlay/trust/1.0.0; an
// Enforcer (enforce.go) closes the connections of revoked members; the
// checks that the handshake, the relay, messaging and tunnels consult are
// methods of the Store.
package trust

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/internal/atomicfile"
)

// Files of the Store in the node's data directory, PEM-armoured as
// 'overlay ca' writes them.
const (
	RevocationsFile = "revocations.pem"
	PolicyFile      = "policy.pem"
)

// Outcome names what became of an offered document, for counts and logs.
// The set is closed: a typo cannot mint a metric label.
type Outcome string

const (
	Accepted     Outcome = "accepted"      // newer and signed by the CA: now held
	Stale        Outcome = "stale"         // the version held already
	Rollback     Outcome = "rollback"      // an older version than the one held
	Malformed    Outcome = "malformed"     // not a document of that kind
	UnknownCA    Outcome = "unknown-ca"    // signed by another CA
	BadSignature Outcome = "bad-signature" // the CA's key, but a forged or damaged signature
	RateLimited  Outcome = "rate-limited"  // a peer offered more than its share (gossip.go)
)

// Outcomes lists every outcome, for metrics that count each.
var Outcomes = []Outcome{Accepted, Stale, Rollback, Malformed, UnknownCA, BadSignature, RateLimited}

// Errors of Offer besides the cert package's (ErrMalformed, ErrUnknownCA,
// ErrBadSignature). A caller that relays documents treats both as "nothing
// to do", not as a fault of the sender.
var (
	ErrStale    = errors.New("not newer than the version held")
	ErrRollback = errors.New("older than the version held (rollback)")
)

// Change is what a subscriber is told: the documents held after a change.
// Revocations or Policy is the one that changed (Kind says which).
type Change struct {
	Kind        byte
	Revocations *cert.RevocationList
	Policy      *cert.Policy
}

// Store holds the newest revocation list and policy the CA signed that this
// node has seen. It is safe for concurrent use; the documents it returns
// are never changed afterwards.
type Store struct {
	ca  ed25519.PublicKey
	dir string
	log *slog.Logger

	mu   sync.Mutex // serializes Offer's check-and-swap and the files
	rev  atomic.Pointer[cert.RevocationList]
	pol  atomic.Pointer[cert.Policy]
	subs map[*subscription]struct{}

	counts map[Outcome]*atomic.Int64
	member atomic.Pointer[memberFunc]
	certs  atomic.Pointer[certFunc]
}

type subscription struct{ fn func(Change) }

// Option configures a Store.
type Option func(*Store)

// WithLogger logs loads, changes and refusals to log.
func WithLogger(log *slog.Logger) Option { return func(s *Store) { s.log = log } }

// Open returns the store of the node whose data directory is dir ("" keeps
// it in memory only), trusting the CA whose public key is ca. It loads the
// documents kept there; one that is damaged or signed by another CA (the
// network changed CA) is logged, set aside and not held.
func Open(dir string, ca ed25519.PublicKey, opts ...Option) (*Store, error) {
	if len(ca) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("trust store: CA public key of %d bytes, want %d", len(ca), ed25519.PublicKeySize)
	}
	s := &Store{ca: ca, dir: dir, log: slog.New(slog.DiscardHandler), subs: map[*subscription]struct{}{},
		counts: map[Outcome]*atomic.Int64{}}
	for _, o := range Outcomes {
		s.counts[o] = new(atomic.Int64)
	}
	for _, o := range opts {
		o(s)
	}
	if dir == "" {
		return s, nil
	}
	for _, kind := range []byte{cert.KindRevocations, cert.KindPolicy} {
		if err := s.load(kind); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// CA returns the CA public key the store trusts.
func (s *Store) CA() ed25519.PublicKey { return s.ca }

func fileOf(kind byte) string {
	if kind == cert.KindPolicy {
		return PolicyFile
	}
	return RevocationsFile
}

// load reads the kept document of kind, if any.
func (s *Store) load(kind byte) error {
	path := filepath.Join(s.dir, fileOf(kind))
	b, err := atomicfile.ReadCapped(path, cert.MaxFileSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("trust store: read %s: %w", path, err)
	}
	k, doc, err := cert.Decode(b)
	if err == nil && k != kind {
		err = fmt.Errorf("%w: holds a %s", cert.ErrMalformed, cert.KindName(k))
	}
	var parsed any
	if err == nil {
		parsed, err = s.check(kind, doc)
	}
	if err != nil {
		aside := path + ".bad"
		s.log.Error("kept "+cert.KindName(kind)+" not loaded; moved aside", "file", path, "to", aside, "err", err)
		if rerr := os.Rename(path, aside); rerr != nil {
			return fmt.Errorf("trust store: move aside %s: %w", path, rerr)
		}
		return nil
	}
	s.hold(parsed)
	return nil
}

// check parses and verifies doc, a raw document of kind.
func (s *Store) check(kind byte, doc []byte) (any, error) {
	switch kind {
	case cert.KindRevocations:
		l, err := cert.ParseRevocations(doc)
		if err == nil {
			err = l.Verify(s.ca)
		}
		return l, err
	case cert.KindPolicy:
		p, err := cert.ParsePolicy(doc)
		if err == nil {
			err = p.Verify(s.ca)
		}
		return p, err
	}
	return nil, fmt.Errorf("%w: a %s is neither a revocation list nor a policy", cert.ErrMalformed, cert.KindName(kind))
}

// hold makes v, a checked *cert.RevocationList or *cert.Policy, the one
// held; s.mu is held or the store is not yet shared.
func (s *Store) hold(v any) {
	switch d := v.(type) {
	case *cert.RevocationList:
		s.rev.Store(d)
	case *cert.Policy:
		s.pol.Store(d)
	}
}

// Revocations returns the newest revocation list held, nil for none.
func (s *Store) Revocations() *cert.RevocationList { return s.rev.Load() }

// Policy returns the newest policy held, nil for none (everything allowed).
func (s *Store) Policy() *cert.Policy { return s.pol.Load() }

// Versions returns the versions held, 0 for none.
func (s *Store) Versions() (revocations, policy uint64) {
	if l := s.rev.Load(); l != nil {
		revocations = l.Version
	}
	if p := s.pol.Load(); p != nil {
		policy = p.Version
	}
	return revocations, policy
}

// Raw returns the document of kind held, nil for none.
func (s *Store) Raw(kind byte) []byte {
	switch kind {
	case cert.KindRevocations:
		if l := s.rev.Load(); l != nil {
			return l.Marshal()
		}
	case cert.KindPolicy:
		if p := s.pol.Load(); p != nil {
			return p.Marshal()
		}
	}
	return nil
}

// Offer considers doc, a raw revocation list or policy (kind), from
// anywhere: a peer or 'overlay ca publish'. It holds and persists it when
// it is newer than the one held and signed by the CA, tells the
// subscribers, and reports changed. The cheap checks come first: the
// size, the header, a copy of the document held, the version; the CA
// signature (an ed25519 check) last. Every outcome is counted. The error
// wraps ErrStale, ErrRollback or the cert package's ErrMalformed,
// ErrUnknownCA or ErrBadSignature.
func (s *Store) Offer(kind byte, doc []byte) (changed bool, err error) {
	o, err := s.offer(kind, doc)
	s.counts[o].Add(1)
	if o != Accepted {
		return false, err
	}
	return true, nil
}

func (s *Store) offer(kind byte, doc []byte) (Outcome, error) {
	if kind != cert.KindRevocations && kind != cert.KindPolicy {
		return Malformed, fmt.Errorf("%w: a %s is neither a revocation list nor a policy", cert.ErrMalformed, cert.KindName(kind))
	}
	if k, err := cert.Kind(doc); err != nil {
		return Malformed, err
	} else if k != kind {
		return Malformed, fmt.Errorf("%w: offered as a %s, holds a %s", cert.ErrMalformed, cert.KindName(kind), cert.KindName(k))
	}
	if held := s.Raw(kind); held != nil && bytes.Equal(held, doc) {
		return Stale, fmt.Errorf("%s: %w", cert.KindName(kind), ErrStale)
	}
	var version, heldVersion uint64
	var newer bool
	var parsed any
	var verify func() error
	switch kind {
	case cert.KindRevocations:
		l, err := cert.ParseRevocations(doc)
		if err != nil {
			return Malformed, err
		}
		held := s.rev.Load()
		version, newer, parsed = l.Version, l.Newer(held), l
		verify = func() error { return l.Verify(s.ca) }
		if held != nil {
			heldVersion = held.Version
		}
	case cert.KindPolicy:
		p, err := cert.ParsePolicy(doc)
		if err != nil {
			return Malformed, err
		}
		held := s.pol.Load()
		version, newer, parsed = p.Version, p.Newer(held), p
		verify = func() error { return p.Verify(s.ca) }
		if held != nil {
			heldVersion = held.Version
		}
	}
	if !newer {
		if version == heldVersion {
			return Stale, fmt.Errorf("%s version %d: %w", cert.KindName(kind), version, ErrStale)
		}
		return Rollback, fmt.Errorf("%s version %d, holding %d: %w", cert.KindName(kind), version, heldVersion, ErrRollback)
	}
	if err := verify(); err != nil {
		switch cert.ReasonOf(err) {
		case cert.ReasonUnknownCA:
			return UnknownCA, err
		case cert.ReasonBadSignature:
			return BadSignature, err
		}
		return Malformed, err
	}
	return s.commit(kind, parsed, doc, version)
}

// commit holds doc unless a newer one arrived meanwhile, persists it and
// tells the subscribers.
func (s *Store) commit(kind byte, parsed any, doc []byte, version uint64) (Outcome, error) {
	s.mu.Lock()
	rv, pv := s.Versions()
	held := rv
	if kind == cert.KindPolicy {
		held = pv
	}
	if version <= held {
		s.mu.Unlock()
		return Stale, fmt.Errorf("%s version %d: %w", cert.KindName(kind), version, ErrStale)
	}
	s.hold(parsed)
	if err := s.persist(kind, doc); err != nil {
		// Held in memory all the same: enforcing it now matters more
		// than keeping it; a restart loses it until a peer offers it.
		s.log.Error("keep "+cert.KindName(kind), "version", version, "err", err)
	}
	ch := Change{Kind: kind, Revocations: s.rev.Load(), Policy: s.pol.Load()}
	subs := make([]*subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	s.log.Info("new "+cert.KindName(kind), "version", version, "previous", held)
	for _, sub := range subs {
		sub.fn(ch)
	}
	return Accepted, nil
}

func (s *Store) persist(kind byte, doc []byte) error {
	if s.dir == "" {
		return nil
	}
	p, err := cert.EncodePEM(doc)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(s.dir, fileOf(kind)), p, 0o644)
}

// Subscribe calls fn after every change, in the goroutine that made it,
// until the returned cancel is called. fn must not block for long: the
// Offer that made the change waits for it.
func (s *Store) Subscribe(fn func(Change)) (cancel func()) {
	sub := &subscription{fn: fn}
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
	}
}

// Counts returns how many offered documents ended in each outcome.
func (s *Store) Counts() map[Outcome]int64 {
	out := make(map[Outcome]int64, len(s.counts))
	for o, c := range s.counts {
		out[o] = c.Load()
	}
	return out
}

// count records an outcome decided outside Offer (a rate-limited peer).
func (s *Store) count(o Outcome) { s.counts[o].Add(1) }

// Status reports what the store holds and what it refused; closed is the
// Enforcer's count (0 without one).
func (s *Store) Status(closed int64) Status {
	st := Status{CA: cert.Fingerprint(s.ca), Offers: s.Counts(), ClosedRevoked: closed}
	if l := s.Revocations(); l != nil {
		st.RevocationsVersion, st.RevokedPeers, st.RevokedSerials = l.Version, len(l.Peers), len(l.Serials)
	}
	if p := s.Policy(); p != nil {
		st.PolicyVersion = p.Version
	}
	return st
}
