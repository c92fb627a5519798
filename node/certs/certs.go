// Package certs is a node's certificate mode (issue 24): its own member
// certificate, read from a file and re-read when the file changes; the
// check of every peer's certificate in the handshake; the certificates of
// the members it admitted, by peer and by name; and the periodic check
// that closes the connections of members whose certificate expired or was
// revoked.
package certs

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node/book"
	"github.com/overlay-net/overlay/protocol"
)

// Defaults of Config.
const (
	// DefaultWarnBefore is how long before its certificate expires a node
	// starts warning (log, status, health, metric).
	DefaultWarnBefore = 7 * 24 * time.Hour
	// DefaultReloadEvery bounds how often the certificate file is looked
	// at: a renewed file is in use within this long.
	DefaultReloadEvery = 5 * time.Second
	// DefaultSweepEvery is how often connected members' certificates are
	// checked for expiry and revocation.
	DefaultSweepEvery = 5 * time.Second
	// DefaultVerifyCache is how many certificates whose CA signature was
	// checked are kept, by their bytes, so that a member that connects
	// again costs no second signature check (docs/certificates.md).
	DefaultVerifyCache = 4096
)

// Config sets a node's certificate mode.
type Config struct {
	// CA is the network CA's public key: the only issuer trusted.
	CA ed25519.PublicKey
	// CertFile holds this node's certificate (PEM or raw); Self is the
	// peer ID it must name.
	CertFile string
	Self     peer.ID
	// Revoked says whether a certificate is revoked (an error wrapping
	// cert.ErrRevoked), from whatever revocation list the node holds; nil:
	// none is.
	Revoked func(*cert.Certificate) error
	// WarnBefore, ReloadEvery, SweepEvery: zero takes the defaults.
	WarnBefore  time.Duration
	ReloadEvery time.Duration
	SweepEvery  time.Duration
	// VerifyCache bounds the certificates kept with their signature
	// checked; 0 takes DefaultVerifyCache, negative keeps none.
	VerifyCache int
	Logger      *slog.Logger
	// Now is the clock; nil: time.Now. Tests move it.
	Now func() time.Time
}

// Manager is a node's certificate mode. It is safe for concurrent use.
type Manager struct {
	cfg Config
	fp  string // the CA's fingerprint

	mu        sync.Mutex
	own       *cert.Certificate
	ownStat   os.FileInfo
	checkedAt time.Time // of the file, for ReloadEvery
	reloadErr string    // the last renewal that failed, "" after a good one
	warned    string    // the last expiry warning logged, so it is logged once

	Members *Members

	book     *book.Book // set by Open
	refusals refusalCounts

	kick chan struct{} // Recheck

	cacheMu  sync.Mutex
	verified map[string]*cert.Certificate // raw bytes -> signature checked against CA
}

// New loads the certificate file and checks that it names cfg.Self and
// was signed by cfg.CA. An expired or not yet valid certificate is loaded
// with a warning: peers refuse the node until it is renewed.
func New(cfg Config) (*Manager, error) {
	if len(cfg.CA) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("certificate mode: CA public key of %d bytes, want %d", len(cfg.CA), ed25519.PublicKeySize)
	}
	if cfg.CertFile == "" {
		return nil, errors.New("certificate mode: no certificate file (--cert FILE)")
	}
	if cfg.WarnBefore <= 0 {
		cfg.WarnBefore = DefaultWarnBefore
	}
	if cfg.ReloadEvery <= 0 {
		cfg.ReloadEvery = DefaultReloadEvery
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = DefaultSweepEvery
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.VerifyCache == 0 {
		cfg.VerifyCache = DefaultVerifyCache
	}
	m := &Manager{cfg: cfg, fp: cert.Fingerprint(cfg.CA), kick: make(chan struct{}, 1)}
	m.Members = newMembers(m)
	c, st, err := m.load()
	if err != nil {
		return nil, err
	}
	m.own, m.ownStat, m.checkedAt = c, st, cfg.Now()
	m.cfg.Logger.Info("certificate mode", "name", c.Name, "groups", c.Groups, "serial", c.Serial,
		"not_after", c.NotAfter.UTC(), "ca", m.fp)
	m.warnExpiry(cfg.Now())
	return m, nil
}

// LoadOwn reads a certificate file and checks it as New does, for
// `overlay config check`: the certificate, or why it cannot be used.
func LoadOwn(file string, ca ed25519.PublicKey, self peer.ID) (*cert.Certificate, error) {
	m := &Manager{cfg: Config{CertFile: file, CA: ca, Self: self}}
	c, _, err := m.load()
	return c, err
}

// load reads and checks the certificate file. The validity window is not
// checked: a node may start with an expired certificate (and is refused).
func (m *Manager) load() (*cert.Certificate, os.FileInfo, error) {
	st, err := os.Stat(m.cfg.CertFile)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %s: %w", m.cfg.CertFile, err)
	}
	if st.Size() > cert.MaxFileSize {
		return nil, nil, fmt.Errorf("certificate %s: %d bytes over cap %d", m.cfg.CertFile, st.Size(), cert.MaxFileSize)
	}
	b, err := os.ReadFile(m.cfg.CertFile)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %s: %w", m.cfg.CertFile, err)
	}
	kind, doc, err := cert.Decode(b)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %s: %w", m.cfg.CertFile, err)
	}
	if kind != cert.KindCertificate {
		return nil, nil, fmt.Errorf("certificate %s: holds a %s, not a certificate", m.cfg.CertFile, cert.KindName(kind))
	}
	c, err := cert.ParseCertificate(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %s: %w", m.cfg.CertFile, err)
	}
	// Verify at a time inside the window: only the signature, the CA and
	// the peer ID decide here.
	if err := c.Verify(m.cfg.CA, m.cfg.Self, c.NotBefore); err != nil {
		return nil, nil, fmt.Errorf("certificate %s: %w", m.cfg.CertFile, err)
	}
	return c, st, nil
}

// Fingerprint is the CA's fingerprint, for refusals and status.
func (m *Manager) Fingerprint() string { return m.fp }

// Own returns this node's certificate, re-reading the file first when
// ReloadEvery has passed since it was last looked at and it changed. A
// renewal that cannot be used keeps the certificate in use, and is logged.
func (m *Manager) Own() *cert.Certificate {
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.checkedAt) >= m.cfg.ReloadEvery {
		m.checkedAt = now
		m.reloadLocked()
	}
	return m.own
}

func (m *Manager) reloadLocked() {
	st, err := os.Stat(m.cfg.CertFile)
	if err == nil && sameFile(st, m.ownStat) {
		return
	}
	var c *cert.Certificate
	if err == nil {
		c, st, err = m.load()
	}
	if err != nil {
		if msg := err.Error(); msg != m.reloadErr {
			m.reloadErr = msg
			m.cfg.Logger.Error("certificate renewal not used, keeping the current certificate", "err", err,
				"serial", m.own.Serial, "not_after", m.own.NotAfter.UTC())
		}
		return
	}
	m.reloadErr = ""
	m.ownStat = st
	if c.Serial == m.own.Serial {
		return
	}
	m.own = c
	m.warned = ""
	m.cfg.Logger.Info("certificate renewed", "name", c.Name, "serial", c.Serial, "not_after", c.NotAfter.UTC())
}

func sameFile(a, b os.FileInfo) bool {
	return b != nil && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && os.SameFile(a, b)
}

// Local is this node's certificate as its hello carries it.
func (m *Manager) Local() []byte { return m.Own().Marshal() }

// Check verifies a peer's certificate in the handshake: this node's mode
// (a certificate is required), then the certificate's form, CA signature,
// binding to from (the connection's authenticated peer ID), validity
// window and revocation. A refusal is a *protocol.Refusal with its code.
func (m *Manager) Check(from peer.ID, remote protocol.Hello) (*cert.Certificate, error) {
	if err := protocol.CheckCertMode(true, m.fp, remote); err != nil {
		return nil, err
	}
	if c := m.cached(remote.Cert); c != nil {
		// Signature and CA checked before: the binding, window and
		// revocation are checked every time.
		if c.Peer != from {
			return nil, protocol.CertRefusal(fmt.Errorf("%w: certificate %q is for %s, presented by %s", cert.ErrPeerMismatch, c.Name, c.Peer, from))
		}
		if err := m.stillValid(c, m.cfg.Now()); err != nil {
			return nil, protocol.CertRefusal(err)
		}
		return c, nil
	}
	c, err := remote.Certificate()
	if err != nil {
		return nil, protocol.CertRefusal(err)
	}
	if err := m.verify(c, from, m.cfg.Now()); err != nil {
		return nil, protocol.CertRefusal(err)
	}
	m.remember(c)
	return c, nil
}

// cached returns the certificate of raw if its signature was checked.
func (m *Manager) cached(raw []byte) *cert.Certificate {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	return m.verified[string(raw)]
}

// remember keeps c, whose signature was checked, within VerifyCache
// entries (past it, an arbitrary one goes).
func (m *Manager) remember(c *cert.Certificate) {
	if m.cfg.VerifyCache < 0 {
		return
	}
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	if m.verified == nil {
		m.verified = map[string]*cert.Certificate{}
	}
	if len(m.verified) >= m.cfg.VerifyCache {
		for k := range m.verified {
			delete(m.verified, k)
			break
		}
	}
	m.verified[string(c.Marshal())] = c
}

// verify checks c for id at now: Verify, then revocation.
func (m *Manager) verify(c *cert.Certificate, id peer.ID, now time.Time) error {
	if err := c.Verify(m.cfg.CA, id, now); err != nil {
		return err
	}
	if m.cfg.Revoked != nil {
		if err := m.cfg.Revoked(c); err != nil {
			return err
		}
	}
	return nil
}

// stillValid checks a certificate admitted earlier (its signature and
// binding were checked then): its window and revocation at now.
func (m *Manager) stillValid(c *cert.Certificate, now time.Time) error {
	if !now.Before(c.NotAfter) {
		return fmt.Errorf("%w: certificate %q expired at %s", cert.ErrExpired, c.Name, c.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(c.NotBefore) {
		return fmt.Errorf("%w: certificate %q is valid from %s", cert.ErrNotYetValid, c.Name, c.NotBefore.UTC().Format(time.RFC3339))
	}
	if m.cfg.Revoked != nil {
		return m.cfg.Revoked(c)
	}
	return nil
}

// Status is this node's certificate, as status shows it.
type Status struct {
	Name      string    `json:"name"`
	Groups    []string  `json:"groups,omitempty"`
	Serial    string    `json:"serial"`
	CA        string    `json:"ca"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// ExpiresIn is seconds until NotAfter, negative once expired.
	ExpiresIn int64 `json:"expires_in_seconds"`
	// Warning is set from WarnBefore before expiry on, and when a renewal
	// could not be used.
	Warning string `json:"warning,omitempty"`
	Expired bool   `json:"expired"`
	// Refusals counts refusals in certificate mode, keyed "CODE by SIDE
	// in WHERE" (see RefusalKey).
	Refusals map[string]int64 `json:"refusals,omitempty"`
}

// Status reports this node's certificate and its warnings.
func (m *Manager) Status() Status {
	c := m.Own()
	now := m.cfg.Now()
	s := Status{Name: c.Name, Groups: c.Groups, Serial: c.Serial.String(), CA: m.fp,
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
		ExpiresIn: int64(c.NotAfter.Sub(now) / time.Second), Expired: !now.Before(c.NotAfter)}
	s.Warning = m.warning(c, now)
	m.mu.Lock()
	if m.reloadErr != "" {
		s.Warning = joinWarn(s.Warning, "renewed certificate file not used: "+m.reloadErr)
	}
	m.mu.Unlock()
	return s
}

// warning words the state of c's validity window at now, "" when fine.
func (m *Manager) warning(c *cert.Certificate, now time.Time) string {
	left := c.NotAfter.Sub(now)
	switch {
	case left <= 0:
		return fmt.Sprintf("%v: this node's certificate expired at %s; every peer refuses it until it is renewed (overlay ca sign, then replace %s)",
			cert.ErrExpired, c.NotAfter.UTC().Format(time.RFC3339), m.cfg.CertFile)
	case now.Before(c.NotBefore):
		return fmt.Sprintf("%v: this node's certificate is valid from %s; peers refuse it until then", cert.ErrNotYetValid, c.NotBefore.UTC().Format(time.RFC3339))
	case left <= m.cfg.WarnBefore:
		return fmt.Sprintf("certificate expires in %s (at %s): renew it (overlay ca sign, then replace %s; no restart needed)",
			left.Round(time.Second), c.NotAfter.UTC().Format(time.RFC3339), m.cfg.CertFile)
	}
	return ""
}

func joinWarn(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// warnExpiry logs the expiry warning once per state (expiring, expired).
func (m *Manager) warnExpiry(now time.Time) {
	c := m.Own()
	w := m.warning(c, now)
	state := ""
	switch {
	case w == "":
	case !now.Before(c.NotAfter):
		state = "expired"
	default:
		state = "warn"
	}
	m.mu.Lock()
	changed := state != m.warned
	m.warned = state
	m.mu.Unlock()
	if !changed || state == "" {
		return
	}
	if state == "expired" {
		m.cfg.Logger.Error("certificate expired", "reason", w)
	} else {
		m.cfg.Logger.Warn("certificate expires soon", "reason", w)
	}
}

// Expired reports whether this node's own certificate has expired.
func (m *Manager) Expired() bool { return !m.cfg.Now().Before(m.Own().NotAfter) }
