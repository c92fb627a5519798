package main

// The certificate round's attacks: raw libp2p hosts of this process that
// run the overlay handshake with a bad certificate, or pass it with a good
// one and then offer bad documents over /overlay/trust (node/trust's
// wire.go: versions, documents, end, each a protocol frame).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/protocol"
)

// trustID is node/trust's protocol (trust.ID), spelt out so that a change
// of version shows here as refused streams, not as a silent pass.
const trustID = "/overlay/trust/1.0.0"

// Frame types of trustID.
const (
	trustVersions = 0x01
	trustDocument = 0x02
	trustEnd      = 0x03
)

// rawHost is a plain go-libp2p host over TCP with key (a new one when nil).
func rawHost(key crypto.PrivKey) (host.Host, error) {
	opts := []libp2p.Option{libp2p.Transport(tcp.NewTCPTransport), libp2p.NoListenAddrs, libp2p.DisableRelay(),
		libp2p.ResourceManager(&network.NullResourceManager{}), libp2p.DisableMetrics()}
	if key != nil {
		opts = append(opts, libp2p.Identity(key))
	}
	return libp2p.New(opts...)
}

// handshake connects h to the relay and runs the overlay handshake with
// crt: nil when the relay admitted h, the relay's refusal code when it
// refused, an error when neither happened.
func handshake(h host.Host, relay peer.AddrInfo, crt []byte) (protocol.RejectCode, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, relay); err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	s, err := h.NewStream(ctx, relay.ID, protocol.HandshakeID)
	if err != nil {
		return "", fmt.Errorf("open handshake: %w", err)
	}
	defer s.Close()
	_, err = protocol.Initiate(s, hello(crt))
	var rej *protocol.RejectedError
	switch {
	case err == nil:
		return "", nil
	case errors.As(err, &rej) && rej.ByPeer:
		return rej.Refusal.Code, nil
	default:
		return "", fmt.Errorf("handshake: %w", err)
	}
}

// handshakeAttack makes n handshakes spread over the window, each from
// the host and with the certificate mk returns, and counts those refused
// with want.
func handshakeAttack(e *certEnv, n int, until time.Time, want protocol.RejectCode,
	mk func() (crypto.PrivKey, []byte, error)) (int, int, string) {
	gap := time.Until(until) / time.Duration(n+3) // room for the handshakes themselves
	attempts, refused, other := 0, 0, map[string]int{}
	for i := 0; i < n && time.Now().Before(until); i++ {
		key, crt, err := mk()
		if err != nil {
			other[err.Error()]++
			continue
		}
		h, err := rawHost(key)
		if err != nil {
			other[shortErr(err)]++
			continue
		}
		attempts++
		code, err := handshake(h, e.relay, crt)
		h.Close()
		switch {
		case err != nil:
			other[shortErr(err)]++
		case code == want:
			refused++
		case code == "":
			other["admitted"]++
		default:
			other["refused as "+string(code)]++
		}
		time.Sleep(gap)
	}
	d := fmt.Sprintf("%d handshakes, %d refused with %s", attempts, refused, want)
	if len(other) > 0 {
		d += fmt.Sprintf("; other: %v", other)
	}
	return attempts, refused, d
}

// attackerNames numbers the attackers' certificate names: distinct names,
// so that the relay logs no name conflict between attackers.
var attackerNames atomic.Int64

// newKeyCert makes an identity and a certificate for it from ca, valid
// from nb to na.
func newKeyCert(ca []byte, nb, na time.Time) (crypto.PrivKey, []byte, error) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, nil, err
	}
	id, _ := peer.IDFromPrivateKey(key)
	c, err := signCert(ca, id, fmt.Sprintf("attacker%d", attackerNames.Add(1)), nb, na)
	if err != nil {
		return nil, nil, err
	}
	return key, c.Marshal(), nil
}

func attackOtherCA(e *certEnv, n int, until time.Time) (int, int, string) {
	return handshakeAttack(e, n, until, protocol.CodeCertUnknownCA, func() (crypto.PrivKey, []byte, error) {
		return newKeyCert(e.otherKey, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	})
}

func attackStolen(e *certEnv, n int, until time.Time) (int, int, string) {
	return handshakeAttack(e, n, until, protocol.CodeCertPeerMismatch, func() (crypto.PrivKey, []byte, error) {
		return nil, e.stolen, nil // a fresh identity, a member's certificate
	})
}

func attackExpired(e *certEnv, n int, until time.Time) (int, int, string) {
	return handshakeAttack(e, n, until, protocol.CodeCertExpired, func() (crypto.PrivKey, []byte, error) {
		return newKeyCert(e.caKey, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	})
}

func attackRevoked(e *certEnv, n int, until time.Time) (int, int, string) {
	return handshakeAttack(e, n, until, protocol.CodeCertRevoked, func() (crypto.PrivKey, []byte, error) {
		return e.revKey, e.revoked, nil // its own key: only the list refuses it
	})
}

// insider is a host that passed the handshake with a valid certificate,
// as a member gone bad would.
func insider(e *certEnv) (host.Host, error) {
	key, crt, err := newKeyCert(e.caKey, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	if err != nil {
		return nil, err
	}
	h, err := rawHost(key)
	if err != nil {
		return nil, err
	}
	code, err := handshake(h, e.relay, crt)
	if err == nil && code != "" {
		err = fmt.Errorf("a valid certificate refused: %s", code)
	}
	if err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// offer runs one trust exchange with the relay as its initiator, saying
// it holds versions (rev, pol), and sends docs (kind, raw) after the
// relay's. It returns the relay's versions.
func offer(h host.Host, relay peer.ID, rev, pol uint64, docs [][2][]byte) (uint64, uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, relay, trustID)
	if err != nil {
		return 0, 0, fmt.Errorf("open trust stream: %w", err)
	}
	defer s.Reset()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	var v [16]byte
	binary.BigEndian.PutUint64(v[:8], rev)
	binary.BigEndian.PutUint64(v[8:], pol)
	if err := protocol.WriteFrame(s, trustVersions, v[:]); err != nil {
		return 0, 0, fmt.Errorf("send versions: %w", err)
	}
	typ, p, err := protocol.ReadFrame(s, 16)
	if err != nil || typ != trustVersions || len(p) != 16 {
		return 0, 0, fmt.Errorf("read versions: type %#x, %d bytes, %v", typ, len(p), err)
	}
	rrev, rpol := binary.BigEndian.Uint64(p[:8]), binary.BigEndian.Uint64(p[8:])
	for { // the relay's documents, up to its end
		typ, _, err := protocol.ReadFrame(s, 1<<20)
		if err != nil {
			return rrev, rpol, fmt.Errorf("read documents: %w", err)
		}
		if typ == trustEnd {
			break
		}
	}
	for _, d := range docs {
		if err := protocol.WriteFrame(s, trustDocument, d[0], d[1]); err != nil {
			return rrev, rpol, fmt.Errorf("send document: %w", err)
		}
	}
	if err := protocol.WriteFrame(s, trustEnd); err != nil {
		return rrev, rpol, fmt.Errorf("send end: %w", err)
	}
	_ = s.CloseWrite()
	io.Copy(io.Discard, io.LimitReader(s, 1<<10)) // until the relay is done with it
	return rrev, rpol, nil
}

// trustAttack has n insiders each offer doc once, spread over the window;
// every offer counts as refused when the relay's versions are still
// (rev, pol) at the end: any document it took would have raised one.
func trustAttack(e *certEnv, n int, until time.Time, claimRev, claimPol uint64, doc [2][]byte) (int, int, string) {
	gap := time.Until(until) / time.Duration(n+3)
	attempts, errs := 0, map[string]int{}
	for i := 0; i < n && time.Now().Before(until); i++ {
		h, err := insider(e)
		if err != nil {
			errs[shortErr(err)]++
			continue
		}
		if _, _, err := offer(h, e.relay.ID, claimRev, claimPol, [][2][]byte{doc}); err != nil {
			errs[shortErr(err)]++
		} else {
			attempts++
		}
		h.Close()
		time.Sleep(gap)
	}
	return trustVerdict(e, attempts, errs)
}

// trustVerdict asks the relay for its versions after an attack.
func trustVerdict(e *certEnv, attempts int, errs map[string]int) (int, int, string) {
	h, err := insider(e)
	if err != nil {
		return attempts, 0, "cannot check the relay's versions: " + err.Error()
	}
	defer h.Close()
	rev, pol, err := offer(h, e.relay.ID, e.revV2Ver, 1<<62, nil)
	if err != nil {
		return attempts, 0, "cannot check the relay's versions: " + err.Error()
	}
	refused := 0
	if rev == e.revV2Ver && pol == 0 {
		refused = attempts
	}
	d := fmt.Sprintf("%d offers; the relay holds revocation list v%d (want v%d), policy v%d (want none)", attempts, rev, e.revV2Ver, pol)
	if len(errs) > 0 {
		d += fmt.Sprintf("; errors: %v", errs)
	}
	return attempts, refused, d
}

func attackTamperedPolicy(e *certEnv, n int, until time.Time) (int, int, string) {
	p := &cert.Policy{Version: 5, Default: "allow"}
	raw, err := p.Sign(e.caKey, time.Now())
	if err != nil {
		return 0, 0, err.Error()
	}
	// The version raised after signing: a document that parses, with a
	// signature over other bytes.
	bad := bytes.Replace(raw, []byte(`"version":5`), []byte(`"version":9`), 1)
	if bytes.Equal(bad, raw) {
		bad[len(bad)-1] ^= 1 // the signature, should the body's form change
	}
	return trustAttack(e, n, until, e.revV2Ver, 9, [2][]byte{{cert.KindPolicy}, bad})
}

func attackRollback(e *certEnv, n int, until time.Time) (int, int, string) {
	return trustAttack(e, n, until, 1, 0, [2][]byte{{cert.KindRevocations}, e.revV1})
}

// attackTrustFlood has n insiders offer bogus revocation lists (random
// bytes behind a valid header), each as fast as the relay answers with a
// 20 ms pause, until the window ends.
func attackTrustFlood(e *certEnv, n int, until time.Time) (int, int, string) {
	var attempts, failed atomic.Int64
	var mu sync.Mutex
	errs := map[string]int{}
	note := func(err error) { // by the step that failed: "read versions", ...
		step, _, _ := strings.Cut(err.Error(), ":")
		mu.Lock()
		errs[step]++
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := insider(e)
			if err != nil {
				note(err)
				return
			}
			defer h.Close()
			body := make([]byte, 4096)
			for time.Now().Before(until) {
				rand.Read(body)
				doc := append([]byte{'o', 'v', cert.KindRevocations, cert.FormatVersion, 0, 0, 0, 0}, body...)
				binary.BigEndian.PutUint32(doc[4:8], uint32(len(body)-64))
				attempts.Add(1)
				if _, _, err := offer(h, e.relay.ID, 1<<40, 0, [][2][]byte{{{cert.KindRevocations}, doc}}); err != nil {
					failed.Add(1)
					note(err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	a, r, d := trustVerdict(e, int(attempts.Load()), nil)
	d = fmt.Sprintf("%d insiders; %s; %d exchanges cut by the relay", n, d, failed.Load())
	if len(errs) > 0 {
		d += fmt.Sprintf(", by step: %v", errs)
	}
	return a, r, d
}
