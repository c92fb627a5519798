// Package dns answers DNS for the overlay's names: NAME.overlay (a member's
// certificate name) and PEERID.overlay (its peer ID, base58 as printed or
// as a CIDv1 in base32/base36, which survives resolvers that change case)
// resolve to the member's overlay addresses. It is authoritative for
// .overlay only: NXDOMAIN for an unknown name under it, REFUSED for
// anything else, because it is not a recursive resolver.
//
// Answer is pure (a request in, a reply out) so it is tested and fuzzed
// without a network; Server serves it on any PacketConn and Listener, the
// host's sockets in kernel mode or gonet's inside the netstack in
// userspace mode.
package dns

import (
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	mdns "github.com/miekg/dns"
)

// Domain is the zone the server answers for.
const Domain = "overlay"

// DefaultTTL is the TTL of answers. Addresses are stable per member, but a
// member can leave the network: short enough that a departed name stops
// resolving soon, long enough to spare most repeated queries.
const DefaultTTL = 30 * time.Second

// Lookup returns the overlay addresses of the member called name (a
// certificate name, or a peer ID in its base58 form, which the server may
// pass lowercased: a Lookup should match known members' IDs ignoring
// case, as node/tun's Engine.Lookup does). An invalid address
// means the member has none of that family.
type Lookup func(name string) (v4, v6 netip.Addr, ok bool)

// Config is what a Server needs.
type Config struct {
	Lookup Lookup
	// TTL of answers; 0 means DefaultTTL.
	TTL    time.Duration
	Logger *slog.Logger
}

const zone = Domain + "."

// soa is the synthetic start of authority returned with negative answers,
// so that resolvers cache them for the TTL (RFC 2308).
func (s *Server) soa() *mdns.SOA {
	ttl := s.ttl()
	return &mdns.SOA{
		Hdr:     mdns.RR_Header{Name: zone, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: ttl},
		Ns:      "ns." + zone,
		Mbox:    "hostmaster." + zone,
		Serial:  1,
		Refresh: ttl, Retry: ttl, Expire: ttl, Minttl: ttl,
	}
}

func (s *Server) ttl() uint32 {
	if s.cfg.TTL <= 0 {
		return uint32(DefaultTTL / time.Second)
	}
	return uint32(s.cfg.TTL / time.Second)
}

// Answer returns the reply to req, or nil when req deserves none (it is
// itself a response). It never fails: a malformed request gets FORMERR.
func (s *Server) Answer(req *mdns.Msg) *mdns.Msg {
	if req == nil || req.Response {
		return nil
	}
	resp := new(mdns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = false
	if opt := req.IsEdns0(); opt != nil {
		// Our answers are tiny; advertise the classic size, no DNSSEC.
		resp.SetEdns0(mdns.MinMsgSize, false)
	}
	switch {
	case req.Opcode != mdns.OpcodeQuery:
		resp.Rcode = mdns.RcodeNotImplemented
		return resp
	case len(req.Question) != 1:
		resp.Rcode = mdns.RcodeFormatError
		return resp
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if !mdns.IsSubDomain(zone, name) || (q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY) {
		resp.Rcode = mdns.RcodeRefused
		return resp
	}
	resp.Authoritative = true
	if name == zone {
		resp.Ns = []mdns.RR{s.soa()}
		if q.Qtype == mdns.TypeSOA {
			resp.Answer, resp.Ns = resp.Ns, nil
		}
		return resp
	}
	labels := mdns.SplitDomainName(q.Name)
	if len(labels) != 2 {
		resp.Rcode, resp.Ns = mdns.RcodeNameError, []mdns.RR{s.soa()}
		return resp
	}
	v4, v6, ok := s.lookup(labels[0])
	if !ok {
		resp.Rcode, resp.Ns = mdns.RcodeNameError, []mdns.RR{s.soa()}
		return resp
	}
	hdr := func(t uint16) mdns.RR_Header {
		return mdns.RR_Header{Name: q.Name, Rrtype: t, Class: mdns.ClassINET, Ttl: s.ttl()}
	}
	if (q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY) && v4.Is4() {
		resp.Answer = append(resp.Answer, &mdns.A{Hdr: hdr(mdns.TypeA), A: v4.AsSlice()})
	}
	if (q.Qtype == mdns.TypeAAAA || q.Qtype == mdns.TypeANY) && v6.Is6() && !v6.Is4In6() {
		resp.Answer = append(resp.Answer, &mdns.AAAA{Hdr: hdr(mdns.TypeAAAA), AAAA: v6.AsSlice()})
	}
	if len(resp.Answer) == 0 {
		resp.Ns = []mdns.RR{s.soa()} // NODATA: the name exists, not this type
	}
	return resp
}

// lookup resolves one label: a certificate name (lowercase), a base58 peer
// ID as written (resolvers usually keep case), or a peer ID as a CID in a
// case-insensitive base, which maps to its base58 form.
func (s *Server) lookup(label string) (v4, v6 netip.Addr, ok bool) {
	if s.cfg.Lookup == nil {
		return v4, v6, false
	}
	if v4, v6, ok = s.cfg.Lookup(strings.ToLower(label)); ok {
		return v4, v6, true
	}
	if v4, v6, ok = s.cfg.Lookup(label); ok {
		return v4, v6, true
	}
	if id, err := peer.Decode(strings.ToLower(label)); err == nil {
		return s.cfg.Lookup(id.String())
	}
	return v4, v6, false
}

// Label returns the case-insensitive DNS label of a peer ID (a CIDv1 in
// base36, as libp2p writes peer IDs in DNS names): LABEL.overlay resolves
// to the peer whatever case a resolver gives it.
func Label(id peer.ID) string {
	s, err := peer.ToCid(id).StringOfBase('k') // multibase base36
	if err != nil {
		return id.String()
	}
	return s
}

// Resolve maps a host name under .overlay (any case, with or without the
// final dot) to the member's addresses through lookup, as the server
// would answer it; ok is false for an unknown member or another domain.
func Resolve(lookup Lookup, host string) (v4, v6 netip.Addr, ok bool) {
	name := strings.TrimSuffix(host, ".")
	label, found := strings.CutSuffix(strings.ToLower(name), "."+Domain)
	if !found || label == "" || strings.Contains(label, ".") {
		return v4, v6, false
	}
	s := Server{cfg: Config{Lookup: lookup}}
	return s.lookup(name[:len(label)])
}
