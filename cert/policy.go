package cert

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A policy's body (kind 0x03, format version 1) is a JSON object:
//
//	version  integer >= 1; each policy the CA signs has a higher one
//	issued   integer, Unix seconds the CA signed it
//	default  "allow" or "deny": the verdict when no rule matches
//	rules    array of at most MaxRules rules, tried in order; optional
//	ca       string, base64 of the issuing CA's 32-byte ed25519 public key
//
// A rule is an object:
//
//	name      string, 1 to 64 letters, digits, '.', '_', '-'; named in refusals
//	action    "allow" or "deny"
//	from      array of selectors: who acts (sends, forwards, opens a connection)
//	to        array of selectors: whom it reaches
//	messages  bool; optional: the rule covers messages (send)
//	services  array of tunnel service names, or "*"; optional
//	ports     array of "*", PROTO, PROTO/PORT or PROTO/LOW-HIGH with PROTO one
//	          of tcp, udp, icmp (no ports); optional: packets on the network
//	          interface
//	relay     array of "reserve", "circuit" or "*"; optional: what a relay
//	          grants. For reserve, from is the member asking for a
//	          reservation and to the relay; for circuit, from is the member
//	          opening a relayed connection and to its destination.
//	publish   array of topic names, or "*"; optional: publishing to a topic
//	          (from: the author, to: the member that takes the message)
//	follow    array of topic names, or "*"; optional: being in a topic's
//	          mesh and receiving it (from: the member that follows, to: the
//	          member that would send it the topic)
//
// A selector is "*" (every member), "group:G", "name:N" or "peer:ID". The
// first rule whose from, to and action kind match decides; without a
// match, the default does. No policy at all allows everything within the
// network. A list with a lower version than the one held is a rollback.
//
// Relay actions (reserve, circuit) are decided only by rules that cover
// them: when none matches, they are allowed whatever the default (the
// decision DecisionNoRelayRule), so that a deny-by-default policy written
// for messages and services does not cut members off their relays.
// Topic actions (publish, follow) likewise (DecisionNoTopicRule): a
// policy without topic rules leaves topics open to every member, as they
// were before topic rules existed.
const (
	MaxRules          = 1024
	MaxRuleItems      = 64 // selectors, services or ports in one rule field
	maxRuleNameLen    = 64
	DecisionNoPolicy  = "no policy"
	DecisionByDefault = "default"
	// DecisionNoRelayRule: no rule covers a relay action, which is then
	// allowed.
	DecisionNoRelayRule = "no relay rule"
	// DecisionNoTopicRule: no rule covers a topic action, which is then
	// allowed.
	DecisionNoTopicRule = "no topic rule"
)

// Relay action names of a rule's relay field.
const (
	RelayReserve = "reserve"
	RelayCircuit = "circuit"
)

// Verdicts of a rule or a policy's default.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Member is who a policy rule selects: a certificate's peer, name and
// groups.
type Member struct {
	Peer   peer.ID
	Name   string
	Groups []string
}

// ActionKind is what a member does to another.
type ActionKind uint8

const (
	ActionMessage ActionKind = iota + 1 // send a message
	ActionTunnel                        // forward to an exposed service
	ActionIP                            // a packet on the network interface
	ActionReserve                       // ask a relay for a reservation (to: the relay)
	ActionCircuit                       // open a circuit through a relay (to: the destination)
	ActionPublish                       // publish to Topic (to: the member taking the message)
	ActionFollow                        // be in Topic's mesh and receive it (to: the member sending it)
)

// Action is one thing a member asks to do to another.
type Action struct {
	Kind    ActionKind
	Service string // ActionTunnel: the service name
	Proto   string // ActionIP: "tcp", "udp" or "icmp"
	Port    uint16 // ActionIP: destination port (tcp, udp)
	Topic   string // ActionPublish, ActionFollow: the topic's name
}

// Decision is a policy's answer: allowed or not, and by which rule
// (DecisionByDefault or DecisionNoPolicy when no rule decided).
type Decision struct {
	Allowed bool
	Rule    string
}

// Rule is one entry of a policy, as in the body.
type Rule struct {
	Name     string   `json:"name"`
	Action   string   `json:"action"`
	From     []string `json:"from"`
	To       []string `json:"to"`
	Messages bool     `json:"messages,omitempty"`
	Services []string `json:"services,omitempty"`
	Ports    []string `json:"ports,omitempty"`
	Relay    []string `json:"relay,omitempty"`
	Publish  []string `json:"publish,omitempty"`
	Follow   []string `json:"follow,omitempty"`

	from, to []selector  // compiled from From and To
	ports    []portRange // compiled from Ports
}

// selector is a compiled From or To entry.
type selector struct {
	any  bool
	kind string // "group", "name" or "peer"
	v    string
	id   peer.ID // kind "peer"
}

func (s selector) selects(m Member) bool {
	switch {
	case s.any:
		return true
	case s.kind == "peer":
		return m.Peer == s.id
	case s.kind == "name":
		return m.Name == s.v
	}
	for _, g := range m.Groups {
		if g == s.v {
			return true
		}
	}
	return false
}

type portRange struct {
	proto  string // "" for any
	lo, hi uint16
}

// Policy is the CA's signed access policy. Allows works on a policy that
// Sign or ParsePolicy returned, whose Rules are not changed afterwards; it
// is then safe for concurrent use.
type Policy struct {
	Version uint64
	Issued  time.Time
	Default string // Allow or Deny
	Rules   []Rule
	Issuer  ed25519.PublicKey

	env envelope
	raw []byte
}

type policyWire struct {
	Version uint64 `json:"version"`
	Issued  int64  `json:"issued"`
	Default string `json:"default"`
	Rules   []Rule `json:"rules,omitempty"`
	CA      []byte `json:"ca"`
}

func validVerdict(v string) error {
	if v != Allow && v != Deny {
		return fmt.Errorf("verdict %q: want %q or %q", v, Allow, Deny)
	}
	return nil
}

func parseSelector(s string) (selector, error) {
	if s == "*" {
		return selector{any: true}, nil
	}
	k, v, ok := strings.Cut(s, ":")
	if !ok {
		return selector{}, fmt.Errorf("selector %q: want *, group:G, name:N or peer:ID", s)
	}
	switch k {
	case "group", "name":
		if err := ValidName(v); err != nil {
			return selector{}, fmt.Errorf("selector %q: %v", s, err)
		}
		return selector{kind: k, v: v}, nil
	case "peer":
		id, err := peer.Decode(v)
		if err != nil {
			return selector{}, fmt.Errorf("selector %q: %v", s, err)
		}
		if id.String() != v {
			return selector{}, fmt.Errorf("selector %q: write the peer ID as %s", s, id)
		}
		return selector{kind: k, v: v, id: id}, nil
	}
	return selector{}, fmt.Errorf("selector %q: want *, group:G, name:N or peer:ID", s)
}

func validRuleName(n string) error {
	if n == "" || len(n) > maxRuleNameLen {
		return fmt.Errorf("rule name must be 1 to %d characters, not %d", maxRuleNameLen, len(n))
	}
	if i := strings.IndexFunc(n, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}); i >= 0 {
		return fmt.Errorf("rule name %q: character %q not allowed", n, n[i])
	}
	return nil
}

// MaxTopicName is the longest topic name a rule names, in bytes (as
// node/topics allows).
const MaxTopicName = 256

// validTopic checks a rule's topic entry: "*" or a topic name.
func validTopic(t string) error {
	if t == "*" {
		return nil
	}
	if t == "" || len(t) > MaxTopicName {
		return fmt.Errorf("topic of %d bytes, want 1 to %d", len(t), MaxTopicName)
	}
	if strings.IndexFunc(t, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return fmt.Errorf("topic %q: control character", t)
	}
	return nil
}

func parsePort(s string) (portRange, error) {
	if s == "*" {
		return portRange{lo: 0, hi: 65535}, nil
	}
	proto, ports, hasPorts := strings.Cut(s, "/")
	switch proto {
	case "tcp", "udp":
	case "icmp":
		if hasPorts {
			return portRange{}, fmt.Errorf("port %q: icmp has no ports", s)
		}
	default:
		return portRange{}, fmt.Errorf("port %q: protocol %q, want tcp, udp or icmp", s, proto)
	}
	if !hasPorts || ports == "*" {
		return portRange{proto: proto, lo: 0, hi: 65535}, nil
	}
	los, his, isRange := strings.Cut(ports, "-")
	lo, err := strconv.ParseUint(los, 10, 16)
	if err != nil {
		return portRange{}, fmt.Errorf("port %q: %v", s, err)
	}
	hi := lo
	if isRange {
		if hi, err = strconv.ParseUint(his, 10, 16); err != nil {
			return portRange{}, fmt.Errorf("port %q: %v", s, err)
		}
	}
	if lo > hi {
		return portRange{}, fmt.Errorf("port %q: low above high", s)
	}
	return portRange{proto: proto, lo: uint16(lo), hi: uint16(hi)}, nil
}

// compile checks a rule and fills its compiled ports.
func (r *Rule) compile() error {
	if err := validRuleName(r.Name); err != nil {
		return err
	}
	if err := validVerdict(r.Action); err != nil {
		return fmt.Errorf("rule %s: %v", r.Name, err)
	}
	if len(r.From) == 0 || len(r.To) == 0 {
		return fmt.Errorf("rule %s: needs from and to", r.Name)
	}
	for _, l := range [][]string{r.From, r.To, r.Services, r.Ports, r.Relay, r.Publish, r.Follow} {
		if len(l) > MaxRuleItems {
			return fmt.Errorf("rule %s: %d items in one field, at most %d", r.Name, len(l), MaxRuleItems)
		}
	}
	r.from, r.to = r.from[:0], r.to[:0]
	for _, s := range r.From {
		sel, err := parseSelector(s)
		if err != nil {
			return fmt.Errorf("rule %s: from: %v", r.Name, err)
		}
		r.from = append(r.from, sel)
	}
	for _, s := range r.To {
		sel, err := parseSelector(s)
		if err != nil {
			return fmt.Errorf("rule %s: to: %v", r.Name, err)
		}
		r.to = append(r.to, sel)
	}
	for _, s := range r.Services {
		if s == "*" {
			continue
		}
		if err := validRuleName(s); err != nil {
			return fmt.Errorf("rule %s: service: %v", r.Name, err)
		}
	}
	r.ports = r.ports[:0]
	for _, p := range r.Ports {
		pr, err := parsePort(p)
		if err != nil {
			return fmt.Errorf("rule %s: %v", r.Name, err)
		}
		r.ports = append(r.ports, pr)
	}
	for _, a := range r.Relay {
		if a != "*" && a != RelayReserve && a != RelayCircuit {
			return fmt.Errorf("rule %s: relay action %q: want %q, %q or \"*\"", r.Name, a, RelayReserve, RelayCircuit)
		}
	}
	for _, t := range append(slices.Clone(r.Publish), r.Follow...) {
		if err := validTopic(t); err != nil {
			return fmt.Errorf("rule %s: %v", r.Name, err)
		}
	}
	if !r.Messages && len(r.Services) == 0 && len(r.Ports) == 0 && len(r.Relay) == 0 && len(r.Publish) == 0 && len(r.Follow) == 0 {
		return fmt.Errorf("rule %s: covers nothing (set messages, services, ports, relay, publish or follow)", r.Name)
	}
	return nil
}

func (p *Policy) validate() error {
	if p.Version == 0 {
		return fmt.Errorf("version 0; the first policy is version 1")
	}
	if p.Issued.Unix() <= 0 {
		return fmt.Errorf("issued time %d", p.Issued.Unix())
	}
	if err := validVerdict(p.Default); err != nil {
		return fmt.Errorf("default: %v", err)
	}
	if len(p.Rules) > MaxRules {
		return fmt.Errorf("%d rules, at most %d", len(p.Rules), MaxRules)
	}
	for i := range p.Rules {
		if err := p.Rules[i].compile(); err != nil {
			return err
		}
	}
	if len(p.Issuer) != ed25519.PublicKeySize {
		return fmt.Errorf("CA public key of %d bytes, want %d", len(p.Issuer), ed25519.PublicKeySize)
	}
	return nil
}

// Sign sets Issuer from key and Issued (if zero) to now, checks p and
// signs it.
func (p *Policy) Sign(key ed25519.PrivateKey, now time.Time) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign policy: CA private key of %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if p.Issued.IsZero() {
		p.Issued = now
	}
	p.Issued = p.Issued.Truncate(time.Second)
	p.Issuer = key.Public().(ed25519.PublicKey)
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("sign policy: %w", err)
	}
	env, b, err := seal(KindPolicy, policyWire{Version: p.Version, Issued: p.Issued.Unix(), Default: p.Default, Rules: p.Rules, CA: p.Issuer}, key)
	if err != nil {
		return nil, err
	}
	p.env, p.raw = env, b
	return b, nil
}

// Marshal returns the signed document, nil for a policy neither signed nor
// parsed.
func (p *Policy) Marshal() []byte { return p.raw }

// ParsePolicy decodes a raw policy document. It checks the form but not
// the signature: Verify does.
func ParsePolicy(b []byte) (*Policy, error) {
	if _, err := open(b, KindPolicy); err != nil {
		return nil, err
	}
	b = bytes.Clone(b)
	env, err := open(b, KindPolicy)
	if err != nil {
		return nil, err
	}
	var w policyWire
	if err := decodeBody(env.body, &w); err != nil {
		return nil, err
	}
	if w.Rules != nil && len(w.Rules) == 0 {
		return nil, fmt.Errorf("%w: policy: empty rules array (omit it)", ErrMalformed)
	}
	p := &Policy{Version: w.Version, Issued: time.Unix(w.Issued, 0), Default: w.Default, Rules: w.Rules, Issuer: w.CA}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("%w: policy: %v", ErrMalformed, err)
	}
	p.env, p.raw = env, b
	return p, nil
}

// Verify checks that p was signed by the CA whose public key is ca. The
// error wraps ErrMalformed, ErrUnknownCA or ErrBadSignature.
func (p *Policy) Verify(ca ed25519.PublicKey) error {
	if p == nil || p.env.signed == nil {
		return fmt.Errorf("%w: policy neither signed nor parsed", ErrMalformed)
	}
	if len(ca) != ed25519.PublicKeySize || !p.Issuer.Equal(ca) {
		return fmt.Errorf("%w: policy issued by CA %s, not %s", ErrUnknownCA, Fingerprint(p.Issuer), Fingerprint(ca))
	}
	if !p.env.check(ca) {
		return fmt.Errorf("%w: policy version %d", ErrBadSignature, p.Version)
	}
	return nil
}

// Newer reports whether p supersedes than: a higher version. A nil than is
// superseded by any policy; a policy not Newer than the held one is stale
// or a rollback and is ignored.
func (p *Policy) Newer(than *Policy) bool {
	return than == nil || p.Version > than.Version
}

// Allows says whether from may do a to to: the first matching rule's
// verdict, else the default. A nil policy allows everything.
func (p *Policy) Allows(from, to Member, a Action) Decision {
	if p == nil {
		return Decision{Allowed: true, Rule: DecisionNoPolicy}
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.covers(a) && selects(r.from, from) && selects(r.to, to) {
			return Decision{Allowed: r.Action == Allow, Rule: r.Name}
		}
	}
	if a.Kind == ActionReserve || a.Kind == ActionCircuit {
		return Decision{Allowed: true, Rule: DecisionNoRelayRule}
	}
	if a.Kind == ActionPublish || a.Kind == ActionFollow {
		return Decision{Allowed: true, Rule: DecisionNoTopicRule}
	}
	return Decision{Allowed: p.Default == Allow, Rule: DecisionByDefault}
}

func (r *Rule) covers(a Action) bool {
	switch a.Kind {
	case ActionMessage:
		return r.Messages
	case ActionTunnel:
		for _, s := range r.Services {
			if s == "*" || s == a.Service {
				return true
			}
		}
	case ActionReserve, ActionCircuit:
		want := RelayReserve
		if a.Kind == ActionCircuit {
			want = RelayCircuit
		}
		for _, v := range r.Relay {
			if v == "*" || v == want {
				return true
			}
		}
	case ActionPublish:
		return slices.Contains(r.Publish, "*") || slices.Contains(r.Publish, a.Topic)
	case ActionFollow:
		return slices.Contains(r.Follow, "*") || slices.Contains(r.Follow, a.Topic)
	case ActionIP:
		for _, pr := range r.ports {
			if pr.proto != "" && pr.proto != a.Proto {
				continue
			}
			if a.Proto == "icmp" || (a.Port >= pr.lo && a.Port <= pr.hi) {
				return true
			}
		}
	}
	return false
}

func selects(sel []selector, m Member) bool {
	for _, s := range sel {
		if s.selects(m) {
			return true
		}
	}
	return false
}
