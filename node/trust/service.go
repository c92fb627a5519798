package trust

import (
	"log/slog"

	"github.com/libp2p/go-libp2p/core/host"
)

// Config starts a node's trust service.
type Config struct {
	Host    host.Host
	Store   *Store
	Members Members
	Logger  *slog.Logger
	// Budget is what each peer may make this node check (DefaultBudget
	// when zero).
	Budget Budget
}

// Service is a node's trust machinery: the exchange that spreads the
// Store's documents and the enforcement of revocations.
type Service struct {
	Gossip   *Gossip
	Enforcer *Enforcer
}

// Start starts spreading and enforcing cfg.Store's documents on cfg.Host.
func Start(cfg Config) (*Service, error) {
	g, err := NewGossip(GossipConfig{Host: cfg.Host, Store: cfg.Store, Members: cfg.Members, Logger: cfg.Logger, Budget: cfg.Budget})
	if err != nil {
		return nil, err
	}
	e, err := NewEnforcer(cfg.Host, cfg.Store, cfg.Logger, g.Sync)
	if err != nil {
		g.Close()
		return nil, err
	}
	return &Service{Gossip: g, Enforcer: e}, nil
}

// Close stops both; it waits for the exchanges and closes under way.
func (s *Service) Close() {
	s.Enforcer.Close()
	s.Gossip.Close()
}

// Status is what status pages and 'overlay ca status' show.
type Status struct {
	CA                 string            `json:"ca"` // fingerprint
	RevocationsVersion uint64            `json:"revocations_version"`
	RevokedPeers       int               `json:"revoked_peers"`
	RevokedSerials     int               `json:"revoked_serials"`
	PolicyVersion      uint64            `json:"policy_version"`
	Offers             map[Outcome]int64 `json:"offers"`
	ClosedRevoked      int64             `json:"closed_revoked"`
}
