package group

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/clock"
)

// Config holds the coordinator's settings, named after Kafka's.
type Config struct {
	MinSessionTimeout     time.Duration // group.min.session.timeout.ms (Kafka: 6s)
	MaxSessionTimeout     time.Duration // group.max.session.timeout.ms (Kafka: 30m)
	InitialRebalanceDelay time.Duration // group.initial.rebalance.delay.ms (Kafka: 3s; 0 allowed)
	MaxSize               int           // group.max.size; 0 = unlimited
	OffsetsRetention      time.Duration // offsets.retention.minutes (Kafka: 7 days)
}

// OffsetRecord is one committed offset as persisted.
type OffsetRecord struct {
	Topic       string
	Partition   int32
	Offset      int64 // -1 in SaveOffsets means "delete" (tombstone)
	LeaderEpoch int32
	Metadata    string
	CommitTime  int64 // unix ms
	ExpireTime  int64 // unix ms; -1 unless an OffsetCommit v2-v4 asked for a retention time
}

// Store persists coordinator state; the broker implements it on the
// compacted __consumer_offsets log. Each call returns nil only once the
// write is durable. On error the Manager leaves its in-memory state as it
// was and answers the request with an error. An error that wraps a
// *kerr.Error is mapped the way Kafka maps log-append errors (for example
// NOT_LEADER_OR_FOLLOWER becomes NOT_COORDINATOR); any other error answers
// COORDINATOR_NOT_AVAILABLE. Calls are made with a group's lock held and
// must not call back into the Manager.
type Store interface {
	SaveGroup(group string, v *kmsg.GroupMetadataValue) error // nil v: the group is gone (tombstone)
	SaveOffsets(group string, offsets []OffsetRecord) error
	// SaveTxnOffsets persists offsets staged by a transaction
	// (TxnOffsetCommit) as the producer's transactional records, which the
	// transaction's commit or abort marker settles, so staged offsets
	// survive a restart between TxnOffsetCommit and EndTxn.
	SaveTxnOffsets(group string, producerID int64, producerEpoch int16, offsets []OffsetRecord) error
}

const (
	// newMemberJoinTimeout bounds how long a member that has never received
	// a JoinGroup response may stay in a rebalance: its connection may be
	// gone, and it cannot heartbeat without its member id (Kafka's
	// NewMemberJoinTimeoutMs).
	newMemberJoinTimeout = 5 * time.Minute

	// maxMetadataSize is Kafka's offset.metadata.max.bytes default.
	maxMetadataSize = 4096

	// consumerProtocolType is the protocol type of Kafka consumers; only
	// such groups have subscriptions the coordinator can read.
	consumerProtocolType = "consumer"

	// allGroupOperations is the AuthorizedOperations bit set of READ (3),
	// DELETE (6) and DESCRIBE (8): what DescribeGroups reports when asked,
	// as Kafka does without an authorizer.
	allGroupOperations = 1<<3 | 1<<6 | 1<<8
)

// Manager coordinates every group on this broker.
type Manager struct {
	cfg     Config
	store   Store
	clk     clock.Clock
	log     *slog.Logger
	closing chan struct{} // closed by Close; releases blocked Join and Sync calls
	closed  atomic.Bool

	mu struct {
		sync.Mutex
		groups map[string]*group
	}
}

// NewManager returns a coordinator with no groups. Call LoadGroup and
// LoadOffset to restore state before serving requests.
func NewManager(cfg Config, store Store, clk clock.Clock, logger *slog.Logger) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{cfg: cfg, store: store, clk: clk, log: logger, closing: make(chan struct{})}
	m.mu.groups = make(map[string]*group)
	return m
}

// Close stops every timer. JoinGroup and SyncGroup calls that are waiting
// return NOT_COORDINATOR, and so does every later call.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed.Load() {
		m.mu.Unlock()
		return
	}
	m.closed.Store(true)
	groups := make([]*group, 0, len(m.mu.groups))
	for _, g := range m.mu.groups {
		groups = append(groups, g)
	}
	m.mu.Unlock()
	close(m.closing)
	for _, g := range groups {
		g.mu.Lock()
		g.stopTimers()
		for _, mem := range g.members {
			g.failWaiters(mem, kerr.NotCoordinator.Code)
		}
		g.mu.Unlock()
	}
}

var errClosed = errors.New("group coordinator closed")

// acquire returns the named group with its mutex held, creating it (Empty)
// if create is set. It returns a nil group if there is none and create is
// not set, and errClosed after Close. created reports a group made by this
// call, which the caller drops again if the request that made it left
// nothing in it.
func (m *Manager) acquire(name string, create bool) (g *group, created bool, err error) {
	for {
		m.mu.Lock()
		if m.closed.Load() {
			m.mu.Unlock()
			return nil, false, errClosed
		}
		g = m.mu.groups[name]
		created = false
		if g == nil {
			if !create {
				m.mu.Unlock()
				return nil, false, nil
			}
			g = newGroup(m, name)
			m.mu.groups[name] = g
			created = true
		}
		m.mu.Unlock()
		g.mu.Lock()
		if !g.removed {
			return g, created, nil
		}
		// Removed between the map lookup and the lock: look again.
		g.mu.Unlock()
	}
}

// snapshot returns the groups that exist now, sorted by name.
func (m *Manager) snapshot() []*group {
	m.mu.Lock()
	defer m.mu.Unlock()
	groups := make([]*group, 0, len(m.mu.groups))
	for _, g := range m.mu.groups {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b *group) int { return cmp.Compare(a.name, b.name) })
	return groups
}

// removeLocked takes g out of the manager; g.mu must be held.
func (m *Manager) removeLocked(g *group) {
	g.stopTimers()
	g.state = stateDead
	g.removed = true
	m.mu.Lock()
	if m.mu.groups[g.name] == g {
		delete(m.mu.groups, g.name)
	}
	m.mu.Unlock()
}

func (m *Manager) nowMs() int64 { return m.clk.Now().UnixMilli() }

type clientKey struct{}

type clientInfo struct{ id, host string }

// WithClient returns a context carrying the client id (from the request
// header) and host (as Kafka shows it, "/127.0.0.1") of the connection a
// JoinGroup arrived on. Join reads them for new member ids and for
// DescribeGroups.
func WithClient(ctx context.Context, clientID, clientHost string) context.Context {
	return context.WithValue(ctx, clientKey{}, clientInfo{clientID, clientHost})
}

func clientFrom(ctx context.Context) clientInfo {
	c, _ := ctx.Value(clientKey{}).(clientInfo)
	return c
}

// newMemberID returns prefix-<random UUID>, Kafka's member id form: the
// prefix is the client id, or the instance id of a static member.
func newMemberID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%s-%x-%x-%x-%x-%x", prefix, b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// storeErrorCode maps a failed Store call to the error a client sees, as
// Kafka maps failed appends to __consumer_offsets. forCommit selects the
// OffsetCommit mapping of oversized writes.
func storeErrorCode(err error, forCommit bool) int16 {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return kerr.CoordinatorNotAvailable.Code
	}
	switch ke {
	case kerr.UnknownTopicOrPartition, kerr.NotEnoughReplicas, kerr.NotEnoughReplicasAfterAppend, kerr.RequestTimedOut:
		return kerr.CoordinatorNotAvailable.Code
	case kerr.NotLeaderForPartition, kerr.KafkaStorageError:
		return kerr.NotCoordinator.Code
	case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidFetchSize:
		if forCommit {
			return kerr.InvalidCommitOffsetSize.Code
		}
		return kerr.UnknownServerError.Code
	}
	return ke.Code
}
