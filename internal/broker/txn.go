package broker

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-dev/weir/internal/record"
)

// Errors of the transaction coordinator, mapped to Kafka's codes by the
// protocol layer.
var (
	ErrProducerFenced        = errors.New("producer fenced")
	ErrInvalidProducerMap    = errors.New("invalid producer id mapping")
	ErrConcurrentTxns        = errors.New("concurrent transactions")
	ErrInvalidTxnTimeout     = errors.New("invalid transaction timeout")
	ErrTransactionalIDNotSet = errors.New("transactional id not found")
)

// Transaction states, as Kafka names them in __transaction_state.
const (
	txnEmpty          = kmsg.TransactionStateEmpty
	txnOngoing        = kmsg.TransactionStateOngoing
	txnPrepareCommit  = kmsg.TransactionStatePrepareCommit
	txnPrepareAbort   = kmsg.TransactionStatePrepareAbort
	txnCompleteCommit = kmsg.TransactionStateCompleteCommit
	txnCompleteAbort  = kmsg.TransactionStateCompleteAbort
)

// maxTxnTimeout is Kafka's transaction.max.timeout.ms default.
const maxTxnTimeout = 15 * time.Minute

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// txnMeta is one transactional id's state.
type txnMeta struct {
	id         string
	pid        int64
	epoch      int16
	timeout    time.Duration
	state      kmsg.TransactionState
	partitions map[TopicPartition]bool
	groups     map[string]bool // from AddOffsetsToTxn, for their staged offsets
	start      time.Time       // when the open transaction began
	updated    time.Time
}

// GroupTxnHook lets the transaction coordinator finish the offsets staged by
// TxnOffsetCommit when a transaction ends (the group coordinator implements
// it).
type GroupTxnHook interface {
	CompleteTxn(group string, producerID int64, commit bool) error
	PendingTxnGroups(producerID int64) []string
}

// TxnCoordinator runs Kafka transactions: producer ids and epochs per
// transactional id, the partitions and groups of each open transaction,
// commit and abort with markers, timeouts. Its state is persisted in
// __transaction_state (kmsg TxnMetadataKey/Value) before it is acted on.
type TxnCoordinator struct {
	b      *Broker
	groups GroupTxnHook

	mu    sync.Mutex // serializes every transition, including its writes
	txns  map[string]*txnMeta
	byPID map[int64]*txnMeta
}

func (c *TxnCoordinator) save(m *txnMeta) error {
	key := kmsg.TxnMetadataKey{Version: 0, TransactionalID: m.id}
	val := kmsg.NewTxnMetadataValue()
	val.Version = 0
	val.ProducerID, val.ProducerEpoch = m.pid, m.epoch
	val.TimeoutMillis = int32(m.timeout / time.Millisecond)
	val.State = m.state
	val.LastUpdateTimestamp = m.updated.UnixMilli()
	val.StartTimestamp = -1
	if !m.start.IsZero() {
		val.StartTimestamp = m.start.UnixMilli()
	}
	byTopic := map[string][]int32{}
	for p := range m.partitions {
		byTopic[p.Topic] = append(byTopic[p.Topic], p.Partition)
	}
	for t, ps := range byTopic {
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		val.Topics = append(val.Topics, kmsg.TxnMetadataValueTopic{Topic: t, Partitions: ps})
	}
	p, err := c.b.internalPartition(TransactionTopic, m.id)
	if err != nil {
		return err
	}
	_, err = p.appendInternal(record.BatchOptions{}, []record.Record{{Key: key.AppendTo(nil), Value: val.AppendTo(nil)}})
	return err
}

// load replays __transaction_state and finishes transactions that were
// being committed or aborted when the broker stopped.
func (c *TxnCoordinator) load() error {
	t, ok := c.b.Topic(TransactionTopic)
	if !ok {
		return nil // created on first use
	}
	return c.loadFrom(t.Partitions())
}

// loadFrom replays the given partitions of __transaction_state, then
// finishes the transactions that were being committed or aborted.
func (c *TxnCoordinator) loadFrom(parts []*Partition) error {
	for _, p := range parts {
		err := p.forEachRecord(func(h *record.Header, r *record.Record) error {
			if h.Control() || r.Key == nil {
				return nil
			}
			var key kmsg.TxnMetadataKey
			if err := key.ReadFrom(r.Key); err != nil {
				return nil // not ours
			}
			if r.Value == nil {
				if m := c.txns[key.TransactionalID]; m != nil {
					delete(c.byPID, m.pid)
				}
				delete(c.txns, key.TransactionalID)
				return nil
			}
			var val kmsg.TxnMetadataValue
			if err := val.ReadFrom(r.Value); err != nil {
				return fmt.Errorf("%w: transaction state of %q: %v", ErrCorruptMessage, key.TransactionalID, err)
			}
			m := &txnMeta{id: key.TransactionalID, pid: val.ProducerID, epoch: val.ProducerEpoch,
				timeout: time.Duration(val.TimeoutMillis) * time.Millisecond, state: val.State,
				partitions: map[TopicPartition]bool{}, groups: map[string]bool{}, updated: time.UnixMilli(val.LastUpdateTimestamp)}
			if val.StartTimestamp >= 0 {
				m.start = time.UnixMilli(val.StartTimestamp)
			}
			for _, t := range val.Topics {
				for _, p := range t.Partitions {
					m.partitions[TopicPartition{t.Topic, p}] = true
				}
			}
			if old := c.txns[m.id]; old != nil {
				delete(c.byPID, old.pid)
			}
			c.txns[m.id] = m
			c.byPID[m.pid] = m
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, m := range c.txns {
		if m.state == txnPrepareCommit || m.state == txnPrepareAbort {
			if err := c.finishLocked(m, m.state == txnPrepareCommit); err != nil {
				c.b.logger.Warn("finish transaction after restart", "transactional_id", m.id, "err", err)
			}
		}
	}
	return nil
}

func (c *TxnCoordinator) now() time.Time { return c.b.clock.Now() }

// InitProducerID gives a transactional producer its id and a new epoch,
// fencing older instances; an open transaction of the id is aborted first.
func (c *TxnCoordinator) InitProducerID(id string, timeout time.Duration, pid int64, epoch int16) (int64, int16, error) {
	if timeout <= 0 || timeout > maxTxnTimeout {
		return -1, -1, fmt.Errorf("%w: %v is not in (0, %v]", ErrInvalidTxnTimeout, timeout, maxTxnTimeout)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.txns[id]
	if m == nil {
		newPID, err := c.b.InitProducerID()
		if err != nil {
			return -1, -1, err
		}
		m = &txnMeta{id: id, pid: newPID, epoch: -1, partitions: map[TopicPartition]bool{}, groups: map[string]bool{}}
	} else if pid >= 0 && (pid != m.pid || epoch != m.epoch) {
		// KIP-360: a producer that knows its id may only bump from its
		// current epoch.
		return -1, -1, fmt.Errorf("%w: producer %d epoch %d does not match %d/%d", ErrProducerFenced, pid, epoch, m.pid, m.epoch)
	}
	if m.state == txnOngoing {
		if err := c.abortForFenceLocked(m); err != nil {
			return -1, -1, err
		}
	}
	next := *m
	next.timeout = timeout
	if m.epoch >= 32766 { // epochs are exhausted: a new producer id
		newPID, err := c.b.InitProducerID()
		if err != nil {
			return -1, -1, err
		}
		next.pid, next.epoch = newPID, 0
	} else {
		next.epoch = m.epoch + 1
	}
	next.state = txnEmpty
	next.partitions, next.groups = map[TopicPartition]bool{}, map[string]bool{}
	next.start, next.updated = time.Time{}, c.now()
	if err := c.save(&next); err != nil {
		return -1, -1, err
	}
	c.install(m, &next)
	return next.pid, next.epoch, nil
}

func (c *TxnCoordinator) install(old, m *txnMeta) {
	if old != nil {
		delete(c.byPID, old.pid)
	}
	c.txns[m.id] = m
	c.byPID[m.pid] = m
}

// lookupLocked finds id and checks that pid/epoch are its current producer.
func (c *TxnCoordinator) lookupLocked(id string, pid int64, epoch int16) (*txnMeta, error) {
	m := c.txns[id]
	switch {
	case m == nil:
		return nil, fmt.Errorf("%w: %q", ErrInvalidProducerMap, id)
	case m.pid != pid:
		return nil, fmt.Errorf("%w: %q belongs to producer %d, not %d", ErrInvalidProducerMap, id, m.pid, pid)
	case epoch < m.epoch:
		return nil, fmt.Errorf("%w: epoch %d is older than %d", ErrProducerFenced, epoch, m.epoch)
	case epoch > m.epoch:
		return nil, fmt.Errorf("%w: epoch %d is newer than %d", ErrInvalidProducerEpoch, epoch, m.epoch)
	case m.state == txnPrepareCommit || m.state == txnPrepareAbort:
		return nil, fmt.Errorf("%w: %q is completing a transaction", ErrConcurrentTxns, id)
	}
	return m, nil
}

// AddPartitions adds partitions to id's transaction, opening it if needed.
// Unknown partitions fail the whole request as Kafka does.
func (c *TxnCoordinator) AddPartitions(id string, pid int64, epoch int16, parts []TopicPartition, verifyOnly bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.lookupLocked(id, pid, epoch)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := c.b.Partition(p.Topic, p.Partition); err != nil {
			return err
		}
	}
	if verifyOnly {
		for _, p := range parts {
			if !m.partitions[p] || m.state != txnOngoing {
				return fmt.Errorf("%w: %s-%d is not in the transaction", ErrInvalidTxnState, p.Topic, p.Partition)
			}
		}
		return nil
	}
	return c.addLocked(m, parts, "")
}

func (c *TxnCoordinator) addLocked(m *txnMeta, parts []TopicPartition, group string) error {
	added := false
	for _, p := range parts {
		if !m.partitions[p] {
			added = true
		}
	}
	if !added && m.state == txnOngoing && (group == "" || m.groups[group]) {
		return nil
	}
	next := *m
	next.partitions = make(map[TopicPartition]bool, len(m.partitions)+len(parts))
	for p := range m.partitions {
		next.partitions[p] = true
	}
	for _, p := range parts {
		next.partitions[p] = true
	}
	next.groups = make(map[string]bool, len(m.groups)+1)
	for g := range m.groups {
		next.groups[g] = true
	}
	if group != "" {
		next.groups[group] = true
	}
	next.updated = c.now()
	if m.state != txnOngoing {
		next.state, next.start = txnOngoing, next.updated
	}
	if err := c.save(&next); err != nil {
		return err
	}
	c.install(m, &next)
	return nil
}

// AddOffsets adds a group's offsets partition to id's transaction, so that
// TxnOffsetCommit may stage offsets for it.
func (c *TxnCoordinator) AddOffsets(id string, pid int64, epoch int16, group string) error {
	if group == "" {
		return fmt.Errorf("%w: empty group id", ErrInvalidRequest)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.lookupLocked(id, pid, epoch)
	if err != nil {
		return err
	}
	p, err := c.b.internalPartition(OffsetsTopic, group)
	if err != nil {
		return err
	}
	return c.addLocked(m, []TopicPartition{{OffsetsTopic, p.Index()}}, group)
}

// CheckTxnOffsetCommit verifies a TxnOffsetCommit: the producer is current
// and the group was added to its transaction.
func (c *TxnCoordinator) CheckTxnOffsetCommit(id string, pid int64, epoch int16, group string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.lookupLocked(id, pid, epoch)
	if err != nil {
		return err
	}
	if m.state != txnOngoing || !m.groups[group] {
		return fmt.Errorf("%w: group %q was not added to the transaction", ErrInvalidTxnState, group)
	}
	return nil
}

// verify checks that a transactional produce belongs to an open
// transaction that includes the partition.
func (c *TxnCoordinator) verify(pid int64, epoch int16, topic string, partition int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.byPID[pid]
	switch {
	case m == nil:
		return fmt.Errorf("%w: producer %d has no transaction", ErrInvalidTxnState, pid)
	case epoch < m.epoch:
		return fmt.Errorf("%w: producer %d epoch %d is older than %d", ErrInvalidProducerEpoch, pid, epoch, m.epoch)
	case epoch > m.epoch:
		return fmt.Errorf("%w: producer %d epoch %d is newer than %d", ErrInvalidProducerEpoch, pid, epoch, m.epoch)
	case m.state != txnOngoing || !m.partitions[TopicPartition{topic, partition}]:
		return fmt.Errorf("%w: %s-%d was not added to the transaction of %q", ErrInvalidTxnState, topic, partition, m.id)
	}
	return nil
}

// EndTxn commits or aborts id's transaction: the decision is made durable
// (Prepare*), markers go to every partition, staged group offsets are
// applied or dropped, and the completion is recorded.
//
// With bump (KIP-890 part 2, EndTxn v5+) every EndTxn moves the producer to
// a new epoch, written into the markers so that a late produce of the
// ended transaction is fenced; the new id and epoch are returned. Aborting
// when nothing is open is then legal and also bumps.
func (c *TxnCoordinator) EndTxn(id string, pid int64, epoch int16, commit, bump bool) (int64, int16, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.txns[id]; bump && m != nil && m.pid == pid && epoch == m.epoch-1 &&
		(m.state == txnCompleteCommit && commit || m.state == txnCompleteAbort && !commit) {
		return m.pid, m.epoch, nil // a retry of the EndTxn that bumped us here
	}
	m, err := c.lookupLocked(id, pid, epoch)
	if err != nil {
		return -1, -1, err
	}
	switch {
	case !bump && (m.state == txnCompleteCommit && commit || m.state == txnCompleteAbort && !commit):
		return m.pid, m.epoch, nil // a retry of a finished EndTxn
	case m.state == txnEmpty || m.state == txnCompleteCommit || m.state == txnCompleteAbort:
		if commit {
			return -1, -1, fmt.Errorf("%w: %q has no open transaction to commit", ErrInvalidTxnState, id)
		}
		if !bump {
			return m.pid, m.epoch, nil // aborting nothing is fine
		}
	case m.state != txnOngoing:
		return -1, -1, fmt.Errorf("%w: %q is in state %v", ErrInvalidTxnState, id, m.state)
	}
	prep := *m
	prep.state, prep.updated = txnPrepareAbort, c.now()
	if commit {
		prep.state = txnPrepareCommit
	}
	if bump {
		if err := c.bumpEpochLocked(&prep); err != nil {
			return -1, -1, err
		}
	}
	if err := c.save(&prep); err != nil {
		return -1, -1, err
	}
	c.install(m, &prep)
	if err := c.finishLocked(&prep, commit); err != nil {
		return -1, -1, err
	}
	done := c.txns[id]
	return done.pid, done.epoch, nil
}

// bumpEpochLocked moves m to the next epoch of its producer id, or to a new
// producer id when the epochs are used up.
func (c *TxnCoordinator) bumpEpochLocked(m *txnMeta) error {
	if m.epoch < 32766 {
		m.epoch++
		return nil
	}
	pid, err := c.b.InitProducerID()
	if err != nil {
		return err
	}
	m.pid, m.epoch = pid, 0
	return nil
}

// AddPartitionImplicit adds a partition to the open transaction of the
// producer that writes to it (Produce v12+, KIP-890 part 2), opening the
// transaction if needed.
func (c *TxnCoordinator) AddPartitionImplicit(pid int64, epoch int16, topic string, partition int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.byPID[pid]
	if m == nil {
		return fmt.Errorf("%w: producer %d has no transactional id", ErrInvalidProducerMap, pid)
	}
	m, err := c.lookupLocked(m.id, pid, epoch)
	if err != nil {
		return err
	}
	if m.partitions[TopicPartition{topic, partition}] && m.state == txnOngoing {
		return nil
	}
	return c.addLocked(m, []TopicPartition{{topic, partition}}, "")
}

// finishLocked writes the markers of a prepared transaction and records it
// complete.
func (c *TxnCoordinator) finishLocked(m *txnMeta, commit bool) error {
	if c.b.clustered() {
		// The partitions' leaders write the markers (and those of
		// __consumer_offsets settle the staged offsets there).
		if err := c.b.writeMarkers(m.partitions, m.pid, m.epoch, commit); err != nil {
			return err
		}
	}
	for p := range m.partitions {
		if c.b.clustered() {
			break
		}
		part, err := c.b.Partition(p.Topic, p.Partition)
		if err != nil {
			continue // the topic was deleted meanwhile
		}
		if err := part.WriteMarker(m.pid, m.epoch, commit, 0); err != nil {
			return err
		}
	}
	if c.groups != nil {
		// The groups this transaction staged offsets in: those added since
		// the broker started and those replayed from the log.
		groups := map[string]bool{}
		for g := range m.groups {
			groups[g] = true
		}
		for _, g := range c.groups.PendingTxnGroups(m.pid) {
			groups[g] = true
		}
		for g := range groups {
			if err := c.groups.CompleteTxn(g, m.pid, commit); err != nil {
				return err
			}
		}
	}
	done := *m
	done.state, done.updated = txnCompleteAbort, c.now()
	if commit {
		done.state = txnCompleteCommit
	}
	done.partitions, done.groups = map[TopicPartition]bool{}, map[string]bool{}
	done.start = time.Time{}
	if err := c.save(&done); err != nil {
		return err
	}
	c.install(m, &done)
	return nil
}

// abortForFenceLocked aborts m's open transaction with a bumped epoch, so
// the producer that opened it is fenced.
func (c *TxnCoordinator) abortForFenceLocked(m *txnMeta) error {
	prep := *m
	prep.epoch = m.epoch + 1
	prep.state, prep.updated = txnPrepareAbort, c.now()
	if err := c.save(&prep); err != nil {
		return err
	}
	c.install(m, &prep)
	if err := c.finishLocked(&prep, false); err != nil {
		return err
	}
	*m = *c.txns[m.id]
	return nil
}

// expire aborts transactions open longer than their timeout.
func (c *TxnCoordinator) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for _, m := range c.txns {
		if m.state == txnOngoing && !m.start.IsZero() && now.Sub(m.start) > m.timeout {
			c.b.logger.Info("aborting timed-out transaction", "transactional_id", m.id, "producer_id", m.pid, "timeout", m.timeout)
			if err := c.abortForFenceLocked(m); err != nil {
				c.b.logger.Warn("abort timed-out transaction", "transactional_id", m.id, "err", err)
			}
		}
	}
}

// TxnInfo describes a transaction for DescribeTransactions and
// ListTransactions.
type TxnInfo struct {
	ID         string
	ProducerID int64
	Epoch      int16
	State      kmsg.TransactionState
	Timeout    time.Duration
	Start      time.Time
	Partitions map[string][]int32
}

// Describe returns the state of the given transactional ids (missing ones
// are absent from the map).
func (c *TxnCoordinator) Describe(ids []string) map[string]TxnInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]TxnInfo{}
	for _, id := range ids {
		if m := c.txns[id]; m != nil {
			out[id] = m.info()
		}
	}
	return out
}

// List returns every transaction.
func (c *TxnCoordinator) List() []TxnInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]TxnInfo, 0, len(c.txns))
	for _, m := range c.txns {
		out = append(out, m.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (m *txnMeta) info() TxnInfo {
	ti := TxnInfo{ID: m.id, ProducerID: m.pid, Epoch: m.epoch, State: m.state, Timeout: m.timeout, Start: m.start, Partitions: map[string][]int32{}}
	for p := range m.partitions {
		ti.Partitions[p.Topic] = append(ti.Partitions[p.Topic], p.Partition)
	}
	return ti
}
