package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/node/certs"
	"github.com/overlay-net/overlay/node/identity"
)

// certFlags are a node's certificate-mode files (--ca-pub, --cert,
// --revocations).
type certFlags struct{ caPub, cert, revocations string }

// certConfig reads the certificate-mode files into cc: the CA's public key
// and, when given, a revocation list signed by it, whose Check becomes the
// handshake's revocation hook. The certificate file itself is the node's
// to read (and re-read when renewed).
func (f certFlags) certConfig(cc *certs.Config) error {
	if f.caPub == "" && f.cert == "" && f.revocations == "" {
		return nil
	}
	if f.caPub == "" {
		return errors.New("--cert and --revocations need the CA's public key (--ca-pub FILE)")
	}
	b, err := readCapped(f.caPub, 4<<10)
	if err != nil {
		return fmt.Errorf("read CA public key: %w", err)
	}
	if cc.CA, err = cert.ParsePublicKey(b); err != nil {
		return fmt.Errorf("%s: %w", f.caPub, err)
	}
	cc.CertFile = f.cert
	if f.revocations == "" {
		return nil
	}
	l, err := readRevocations(f.revocations, cc.CA)
	if err != nil {
		return err
	}
	cc.Revoked = l.Check
	return nil
}

// readRevocations reads a revocation list file and checks its CA signature.
func readRevocations(file string, ca []byte) (*cert.RevocationList, error) {
	b, err := readCapped(file, cert.MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("read revocation list: %w", err)
	}
	kind, doc, err := cert.Decode(b)
	if err == nil && kind != cert.KindRevocations {
		err = fmt.Errorf("holds a %s, not a revocation list", cert.KindName(kind))
	}
	var l *cert.RevocationList
	if err == nil {
		l, err = cert.ParseRevocations(doc)
	}
	if err == nil {
		err = l.Verify(ca)
	}
	if err != nil {
		return nil, fmt.Errorf("revocation list %s: %w", file, err)
	}
	return l, nil
}

// checkCertFiles is what `overlay config check` checks of certificate
// mode: the files read, and the certificate signed by the CA for this
// node's identity key when that key exists already.
func (x *daemon) checkCertFiles(cc *certs.Config) error {
	if err := x.d.certs.certConfig(cc); err != nil || cc.CertFile == "" {
		return err
	}
	keyFile := x.d.key
	if keyFile == "" {
		keyFile = filepath.Join(x.d.data, "identity.key")
	}
	var self peer.ID
	if b, err := readCapped(keyFile, 64<<10); err == nil {
		if k, err := identity.Parse(b); err == nil {
			self, _ = peer.IDFromPrivateKey(k)
		}
	}
	// An expired certificate is no error here: the node starts, says so,
	// and takes a renewed file without a restart.
	_, err := certs.LoadOwn(cc.CertFile, cc.CA, self)
	if self == "" && errors.Is(err, cert.ErrPeerMismatch) {
		return nil // the key is made at first start: the binding is checked then
	}
	return err
}

func readCapped(file string, max int64) ([]byte, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes over cap %d", file, st.Size(), max)
	}
	return os.ReadFile(file)
}
