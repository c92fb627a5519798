package wstransport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultCertCheckInterval is how often, at most, a /tls/ws listener looks
// at its certificate and key files for a renewed pair: the cost is two
// stat calls on one handshake per interval, and a renewal reaches new
// handshakes within it.
const DefaultCertCheckInterval = 5 * time.Second

// maxPEMFile caps a certificate, key or CA file: a chain of a few
// certificates is a few KiB, a system bundle of CAs about 200 KiB.
const maxPEMFile = 1 << 20

// certFiles serves the certificate pair in two PEM files and loads the
// pair again when either file changes (mtime, size, or a new file put in
// its place), so a renewed certificate needs no restart. A pair that fails
// to load (a half-written renewal, a key that does not match) leaves the
// previous one in service; it is tried again at the next check once a
// file changes again.
type certFiles struct {
	certFile, keyFile string
	every             time.Duration
	log               *slog.Logger

	mu         sync.Mutex
	cert       *tls.Certificate
	loaded     [2]os.FileInfo // the files as they were when cert was loaded
	failed     [2]os.FileInfo // the files as they were at the last failed load
	statFailed bool           // the last check could not stat a file
	checked    time.Time
	reloaded   int // loads after the first, for tests
}

// loadCertFiles loads the pair at once: a listener must not start without
// a certificate it can serve.
func loadCertFiles(certFile, keyFile string, every time.Duration, log *slog.Logger) (*certFiles, error) {
	f := &certFiles{certFile: certFile, keyFile: keyFile, every: every, log: log}
	st, err := f.stat()
	if err != nil {
		return nil, err
	}
	if err := f.load(st); err != nil {
		return nil, err
	}
	f.checked = time.Now()
	return f, nil
}

// getCertificate is the listener's tls.Config.GetCertificate.
func (f *certFiles) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now := time.Now(); now.Sub(f.checked) >= f.every {
		f.checked = now
		f.reloadIfChanged()
	}
	return f.cert, nil
}

// reloadIfChanged loads the pair again if a file differs from the loaded
// one and from the last one that failed. f.mu must be held.
func (f *certFiles) reloadIfChanged() {
	st, err := f.stat()
	if err != nil {
		if !f.statFailed {
			f.log.Warn("TLS certificate files unreadable; serving the loaded certificate", "err", err)
		}
		f.statFailed = true
		return
	}
	f.statFailed = false
	if sameFiles(st, f.loaded) || sameFiles(st, f.failed) {
		return
	}
	if err := f.load(st); err != nil {
		f.failed = st
		f.log.Warn("TLS certificate renewal failed; serving the loaded certificate", "err", err)
		return
	}
	f.reloaded++
	f.log.Info("TLS certificate reloaded", "cert", f.certFile, "not_after", f.cert.Leaf.NotAfter)
}

func (f *certFiles) stat() ([2]os.FileInfo, error) {
	var st [2]os.FileInfo
	for i, name := range []string{f.certFile, f.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return st, fmt.Errorf("stat %s: %w", name, err)
		}
		st[i] = fi
	}
	return st, nil
}

// load reads the pair; st is what the files were just before, recorded
// as loaded on success.
func (f *certFiles) load(st [2]os.FileInfo) error {
	certPEM, err := readPEMFile(f.certFile)
	if err != nil {
		return err
	}
	keyPEM, err := readPEMFile(f.keyFile)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("certificate %s with key %s: %w", f.certFile, f.keyFile, err)
	}
	f.cert, f.loaded, f.failed = &cert, st, [2]os.FileInfo{}
	return nil
}

func sameFiles(a, b [2]os.FileInfo) bool {
	for i := range a {
		if a[i] == nil || b[i] == nil {
			return false
		}
		if !os.SameFile(a[i], b[i]) || !a[i].ModTime().Equal(b[i].ModTime()) || a[i].Size() != b[i].Size() {
			return false
		}
	}
	return true
}

// readPEMFile reads a PEM file of at most maxPEMFile bytes.
func readPEMFile(name string) ([]byte, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("read %s: larger than %d bytes", name, maxPEMFile)
	}
	return b, nil
}

// loadCAFile returns a pool of the CA certificates in a PEM file.
func loadCAFile(name string) (*x509.CertPool, error) {
	b, err := readPEMFile(name)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no PEM certificate in " + name)
	}
	return pool, nil
}

// CheckFiles loads the files a Config names (the certificate and key pair,
// the CA file) as the transport would, and returns the first that does not
// load. It keeps nothing: `overlay config check` uses it to fail on what
// the node would refuse at start.
func CheckFiles(certFile, keyFile, caFile string) error {
	if certFile != "" || keyFile != "" {
		f := &certFiles{certFile: certFile, keyFile: keyFile}
		if err := f.load([2]os.FileInfo{}); err != nil {
			return fmt.Errorf("tls certificate: %w", err)
		}
	}
	if caFile != "" {
		if _, err := loadCAFile(caFile); err != nil {
			return fmt.Errorf("tls ca: %w", err)
		}
	}
	return nil
}
