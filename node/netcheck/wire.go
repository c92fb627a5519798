package netcheck

import (
	"errors"
	"fmt"
	"net"

	"github.com/pion/stun/v3"
)

// The wire format is STUN (RFC 8489) Binding, through pion/stun, so that any
// STUN client can ask a relay what address it sees:
//
//	request  (client -> relay): Binding request, 20-byte header, no
//	                            attributes needed; a FINGERPRINT is accepted.
//	response (relay -> client): Binding success with the request's
//	                            transaction ID, XOR-MAPPED-ADDRESS (the
//	                            source address the request came from) and
//	                            FINGERPRINT: 40 bytes for IPv4, 52 for IPv6.
//
// STUN's first byte has bits 0x40 and 0x80 clear, so quic-go hands these
// packets to the non-QUIC reader of the same UDP socket (see socket.go). A
// STUN message that is neither of these two is dropped, unanswered.

// MaxPacket caps a packet the socket reads; a longer one is dropped. STUN
// needs 20 bytes for a request and under 100 for our response.
const MaxPacket = 1280

var (
	errNotSTUN   = errors.New("not a STUN message")
	errTooLarge  = fmt.Errorf("packet over %d bytes", MaxPacket)
	errUnwanted  = errors.New("STUN message neither a Binding request nor a Binding success")
	errNoMapping = errors.New("Binding success without XOR-MAPPED-ADDRESS")
)

// txID is a STUN transaction ID.
type txID = [stun.TransactionIDSize]byte

// packet is a decoded Binding request or success.
type packet struct {
	request bool
	tx      txID
	mapped  *net.UDPAddr // of a success
}

// decode reads one packet. It never panics: bad input is an error.
func decode(b []byte) (packet, error) {
	if len(b) > MaxPacket {
		return packet{}, errTooLarge
	}
	if !stun.IsMessage(b) {
		return packet{}, errNotSTUN
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil {
		return packet{}, fmt.Errorf("decode STUN: %w", err)
	}
	if int(m.Length)+20 != len(b) {
		return packet{}, fmt.Errorf("decode STUN: length %d, packet %d bytes", m.Length, len(b))
	}
	if m.Contains(stun.AttrFingerprint) {
		if err := stun.Fingerprint.Check(m); err != nil {
			return packet{}, fmt.Errorf("decode STUN: %w", err)
		}
	}
	switch m.Type {
	case stun.BindingRequest:
		return packet{request: true, tx: m.TransactionID}, nil
	case stun.BindingSuccess:
		var xa stun.XORMappedAddress
		if err := xa.GetFrom(m); err != nil {
			return packet{}, errNoMapping
		}
		return packet{tx: m.TransactionID, mapped: &net.UDPAddr{IP: xa.IP, Port: xa.Port}}, nil
	}
	return packet{}, errUnwanted
}

// newRequest is a Binding request with a fresh random transaction ID.
func newRequest() ([]byte, txID, error) {
	m, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return nil, txID{}, fmt.Errorf("build STUN request: %w", err)
	}
	return m.Raw, m.TransactionID, nil
}

// newResponse answers request tx from the address from.
func newResponse(tx txID, from *net.UDPAddr) ([]byte, error) {
	m, err := stun.Build(stun.NewTransactionIDSetter(tx), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: from.IP, Port: from.Port}, stun.Fingerprint)
	if err != nil {
		return nil, fmt.Errorf("build STUN response: %w", err)
	}
	return m.Raw, nil
}
