package dns_test

import (
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/overlay-net/overlay/node/tun/dns"
)

// FuzzAnswer feeds raw request bytes through the server's request path:
// whatever parses gets an answer that packs, and nothing panics.
func FuzzAnswer(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"alice.overlay.", mdns.TypeA}, {"ALICE.overlay.", mdns.TypeAAAA}, {"x.overlay.", mdns.TypeANY},
		{"overlay.", mdns.TypeSOA}, {"example.com.", mdns.TypeA}} {
		m := new(mdns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(4096, true)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	s := dns.New(dns.Config{Lookup: func(name string) (netip.Addr, netip.Addr, bool) {
		if name == "alice" {
			return netip.MustParseAddr("100.64.1.2"), netip.MustParseAddr("fd00::1"), true
		}
		return netip.Addr{}, netip.Addr{}, false
	}})
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(mdns.Msg)
		if err := req.Unpack(b); err != nil {
			return
		}
		resp := s.Answer(req)
		if resp == nil {
			return
		}
		resp.Truncate(mdns.MinMsgSize)
		if _, err := resp.Pack(); err != nil {
			t.Fatalf("answer does not pack: %v\nrequest: %v\nanswer: %v", err, req, resp)
		}
	})
}
