// Package tun makes the overlay a network: an Engine moves IP packets
// between a network interface (a wireguard-go tun.Device: the kernel's TUN
// or a userspace netstack, the engine does not care which) and the members
// the packets are addressed to, on a libp2p stream of ours
// (protocol.IPID), over whatever connection joins the two members.
//
// Each member has an IPv4 address in Prefix4 and an IPv6 address in
// Prefix6 (AddrsFor): from its certificate when it names them, else
// derived from its peer ID. The engine answers a packet to an address of
// the prefixes that is no member's with ICMP unreachable at once, and one
// the access policy denies with ICMP administratively prohibited.
//
// Start (start.go) is what the node calls: it brings up the interface its
// Options name (kernel TUN with addresses and routes, or the userspace
// mode) and an Engine on it.
package tun

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	wgtun "golang.zx2c4.com/wireguard/tun"

	"github.com/overlay-net/overlay/cert"
)

// DefaultMTU is the interface MTU. Packets travel whole inside a libp2p
// stream (TCP, QUIC or WebSocket below it), never as IP datagrams of their
// own on the path, so no size needs fragmenting there; the MTU only bounds
// a packet frame. A large one means fewer packets per byte for the engine
// and the kernel's segmentation offload; 16000 measured 0.83-0.89x of
// overlay perf where 1420 gave 0.57-0.70x (docs/tun.md). A member with a
// smaller MTU answers larger packets with ICMP too-big, and TCP's MSS is
// the smaller side's anyway.
const DefaultMTU = 16000

// Known is one member as the node knows it: what Source lists.
type Known struct {
	ID   peer.ID
	Name string            // the certificate's name, when this peer owns it; "" for none
	Cert *cert.Certificate // the certificate it presented; nil outside certificate mode
}

// Source is what the engine asks of the node about members.
type Source interface {
	// Known lists the members the node knows now, connected or not.
	Known() []Known
	// IsMember reports whether p passed the handshake as a member; it
	// waits (up to ctx) for a handshake under way.
	IsMember(ctx context.Context, p peer.ID) bool
	// EnsureMember connects to member p (directly or through a relay),
	// or says why it cannot.
	EnsureMember(ctx context.Context, p peer.ID) error
}

// Policy is the access policy on packets (node/trust's Store): nil when
// from may send a to to, else why not. A nil Policy allows everything.
type Policy interface {
	Allow(from, to peer.ID, a cert.Action) error
}

// Config wires an Engine to its device and node.
type Config struct {
	// Device is the interface the engine reads and writes packets on. The
	// engine owns it from New on and closes it in Close.
	Device wgtun.Device
	// Host opens and accepts the packet streams and delivers path events.
	Host host.Host
	// Addr4 and Addr6 are this node's own overlay addresses (AddrsFor).
	Addr4, Addr6 netip.Addr
	// MTU of Device; 0: DefaultMTU.
	MTU     int
	Logger  *slog.Logger
	Members Source
	Policy  Policy
}

// Member is one member of the overlay network as the interface sees it.
type Member struct {
	ID   peer.ID    `json:"peer_id"`
	Name string     `json:"name,omitempty"`
	V4   netip.Addr `json:"ipv4"`
	V6   netip.Addr `json:"ipv6"`
	// Collision names the member that holds V4 instead of this one (two
	// peer IDs derived the same address); "" when V4 is this member's.
	Collision peer.ID `json:"collision,omitempty"`
}
