package broker

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"strings"
)

// MaxTopicNameLength is Kafka's limit on topic names.
const MaxTopicNameLength = 249

// ValidateTopicName applies Kafka's rules: 1 to 249 characters from
// [a-zA-Z0-9._-], and not "." or "..".
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: topic name is empty", ErrInvalidTopic)
	case name == "." || name == "..":
		return fmt.Errorf("%w: topic name cannot be %q", ErrInvalidTopic, name)
	case len(name) > MaxTopicNameLength:
		return fmt.Errorf("%w: topic name is %d characters, the limit is %d", ErrInvalidTopic, len(name), MaxTopicNameLength)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: topic name %q has character %q; only [a-zA-Z0-9._-] are allowed", ErrInvalidTopic, name, c)
		}
	}
	return nil
}

// collisionKey maps names that Kafka's metrics would confuse ('.' and '_')
// to one key; two topics may not share it.
func collisionKey(name string) string { return strings.ReplaceAll(name, ".", "_") }

// TopicSpec describes a topic to create.
type TopicSpec struct {
	Name              string
	Partitions        int32 // -1 for the broker default
	ReplicationFactor int16 // -1 for the broker default
	Configs           map[string]string
}

// CreateTopic creates a topic durably, or with validateOnly only checks that
// it could.
func (b *Broker) CreateTopic(spec TopicSpec, validateOnly bool) (*Topic, error) {
	if err := ValidateTopicName(spec.Name); err != nil {
		return nil, err
	}
	if spec.Partitions == -1 {
		spec.Partitions = b.cfg.DefaultPartitions
	}
	if spec.ReplicationFactor == -1 {
		spec.ReplicationFactor = b.defaultReplicas()
	}
	if spec.Partitions <= 0 {
		return nil, fmt.Errorf("%w: topic needs at least one partition, got %d", ErrInvalidPartitions, spec.Partitions)
	}
	if spec.Partitions > 100_000 {
		return nil, fmt.Errorf("%w: %d partitions is more than one node serves", ErrInvalidPartitions, spec.Partitions)
	}
	if spec.ReplicationFactor != 1 && !b.clustered() {
		return nil, fmt.Errorf("%w: replication factor %d is larger than the 1 available broker", ErrInvalidReplication, spec.ReplicationFactor)
	}
	for name, v := range spec.Configs {
		if err := ValidateTopicConfig(name, v); err != nil {
			return nil, err
		}
	}
	if b.clustered() {
		return b.createClusterTopic(spec, validateOnly)
	}

	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	if err := b.checkNewName(spec.Name); err != nil {
		return nil, err
	}
	if validateOnly {
		return nil, nil
	}
	id, err := newUUID()
	if err != nil {
		return nil, err
	}
	t := b.newTopic(spec.Name, id, maps.Clone(spec.Configs))
	for i := range spec.Partitions {
		p, err := b.openPartition(t, i)
		if err != nil {
			for _, p := range t.partitions {
				p.log.Close()
			}
			b.removeTopicDirs(t.Name, i+1)
			return nil, fmt.Errorf("%w: create partition %d: %v", ErrStorage, i, err)
		}
		t.partitions = append(t.partitions, p)
	}
	b.meta.Topics = append(b.meta.Topics, topicMeta{Name: t.Name, ID: TopicIDString(id), Partitions: spec.Partitions, Configs: t.configs})
	if err := saveMeta(b.cfg.DataDir, b.meta); err != nil {
		b.meta.Topics = b.meta.Topics[:len(b.meta.Topics)-1]
		for _, p := range t.partitions {
			p.log.Close()
		}
		b.removeTopicDirs(t.Name, spec.Partitions)
		return nil, fmt.Errorf("%w: save metadata: %v", ErrStorage, err)
	}
	b.mu.Lock()
	b.topics[t.Name] = t
	b.byID[t.ID] = t
	b.mu.Unlock()
	b.logger.Info("created topic", "topic", t.Name, "partitions", spec.Partitions, "configs", spec.Configs)
	return t, nil
}

func (b *Broker) checkNewName(name string) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.checkNameLocked(name, maps.Keys(b.topics)); err != nil {
		return err
	}
	if _, ok := b.topics[name]; ok {
		return fmt.Errorf("%w: %q", ErrTopicExists, name)
	}
	return nil
}

// checkNameLocked checks a new topic's name against the views, and
// against the topics named in topics for names Kafka's metrics would
// confuse with it; a topic of that very name is the caller's to check.
func (b *Broker) checkNameLocked(name string, topics iter.Seq[string]) error {
	if b.closed {
		return ErrBrokerShuttingDown
	}
	if _, ok := b.views[name]; ok {
		return fmt.Errorf("%w: %q is a view", ErrTopicExists, name)
	}
	key := collisionKey(name)
	for other := range topics {
		if other != name && collisionKey(other) == key {
			return fmt.Errorf("%w: topic %q collides with existing topic %q ('.' and '_' are interchangeable in metric names)", ErrInvalidTopic, name, other)
		}
	}
	return nil
}

// AutoCreateTopic creates a topic with defaults when a client uses an
// unknown name and auto-creation is on. It returns the existing topic if
// another request created it first.
func (b *Broker) AutoCreateTopic(name string) (*Topic, error) {
	if t, ok := b.Topic(name); ok {
		return t, nil
	}
	if !b.cfg.AutoCreateTopics {
		return nil, fmt.Errorf("%w: topic %q (auto-creation is off)", ErrUnknownTopicOrPartition, name)
	}
	t, err := b.CreateTopic(TopicSpec{Name: name, Partitions: -1, ReplicationFactor: -1}, false)
	if errors.Is(err, ErrTopicExists) {
		if t, ok := b.Topic(name); ok {
			return t, nil
		}
	}
	return t, err
}

// DeleteTopic removes a topic and its data.
func (b *Broker) DeleteTopic(name string) error {
	if b.isView(name) {
		return ErrReadOnlyView
	}
	if name == OffsetsTopic || name == TransactionTopic {
		return fmt.Errorf("%w: %s holds the broker's own state", ErrInternalTopic, name)
	}
	if b.clustered() {
		return b.clusterChange(func(ctx context.Context) error { return b.cfg.Cluster.DeleteTopic(ctx, name) })
	}
	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	t, ok := b.Topic(name)
	if !ok {
		return fmt.Errorf("%w: topic %q", ErrUnknownTopicOrPartition, name)
	}
	kept := make([]topicMeta, 0, len(b.meta.Topics))
	for _, tm := range b.meta.Topics {
		if tm.Name != name {
			kept = append(kept, tm)
		}
	}
	old := b.meta.Topics
	b.meta.Topics = kept
	if err := saveMeta(b.cfg.DataDir, b.meta); err != nil {
		b.meta.Topics = old
		return fmt.Errorf("%w: save metadata: %v", ErrStorage, err)
	}
	b.mu.Lock()
	delete(b.topics, name)
	delete(b.byID, t.ID)
	b.mu.Unlock()
	t.mu.Lock()
	parts := t.partitions
	t.mu.Unlock()
	for _, p := range parts {
		p.markDeleted()
		p.log.Close()
		p.notify()
	}
	// The metadata no longer names the topic, so a crash from here on
	// leaves stray directories that the next start removes.
	b.removeTopicDirs(name, int32(len(parts)))
	if b.groups != nil {
		b.groups.DropTopic(name)
	}
	b.logger.Info("deleted topic", "topic", name)
	return nil
}

func (b *Broker) removeTopicDirs(name string, partitions int32) {
	for i := range partitions {
		if err := os.RemoveAll(partitionDir(b.cfg.DataDir, name, i)); err != nil {
			b.logger.Warn("remove partition dir", "topic", name, "partition", i, "err", err)
		}
	}
}

// CreatePartitions grows a topic to count partitions.
func (b *Broker) CreatePartitions(name string, count int32, validateOnly bool) error {
	if b.isView(name) {
		return ErrReadOnlyView
	}
	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	t, ok := b.Topic(name)
	if !ok {
		return fmt.Errorf("%w: topic %q", ErrUnknownTopicOrPartition, name)
	}
	have := t.NumPartitions()
	if count <= have {
		return fmt.Errorf("%w: topic %q has %d partitions; the count can only grow", ErrInvalidPartitions, name, have)
	}
	if count > 100_000 {
		return fmt.Errorf("%w: %d partitions is more than one node serves", ErrInvalidPartitions, count)
	}
	if validateOnly {
		return nil
	}
	if b.clustered() {
		b.adminMu.Unlock()
		defer b.adminMu.Lock()
		return b.clusterChange(func(ctx context.Context) error { return b.cfg.Cluster.CreatePartitions(ctx, name, count) })
	}
	var added []*Partition
	for i := have; i < count; i++ {
		p, err := b.openPartition(t, i)
		if err != nil {
			for _, p := range added {
				p.log.Close()
			}
			for j := have; j <= i; j++ {
				os.RemoveAll(partitionDir(b.cfg.DataDir, name, j))
			}
			return fmt.Errorf("%w: create partition %d: %v", ErrStorage, i, err)
		}
		added = append(added, p)
	}
	for i := range b.meta.Topics {
		if b.meta.Topics[i].Name == name {
			b.meta.Topics[i].Partitions = count
		}
	}
	if err := saveMeta(b.cfg.DataDir, b.meta); err != nil {
		for i := range b.meta.Topics {
			if b.meta.Topics[i].Name == name {
				b.meta.Topics[i].Partitions = have
			}
		}
		for _, p := range added {
			p.log.Close()
			os.RemoveAll(p.log.Dir())
		}
		return fmt.Errorf("%w: save metadata: %v", ErrStorage, err)
	}
	t.mu.Lock()
	t.partitions = append(t.partitions, added...)
	t.mu.Unlock()
	b.logger.Info("added partitions", "topic", name, "from", have, "to", count)
	return nil
}

// ConfigOp is one incremental config change.
type ConfigOp struct {
	Name  string
	Op    ConfigOpType
	Value string
}

// ConfigOpType is Kafka's IncrementalAlterConfigs operation.
type ConfigOpType int8

// Incremental config operations.
const (
	OpSet      ConfigOpType = 0
	OpDelete   ConfigOpType = 1
	OpAppend   ConfigOpType = 2
	OpSubtract ConfigOpType = 3
)

// AlterTopicConfigs replaces all of a topic's configs (AlterConfigs).
func (b *Broker) AlterTopicConfigs(name string, configs map[string]string, validateOnly bool) error {
	return b.changeConfigs(name, validateOnly, func(map[string]string) (map[string]string, error) {
		return maps.Clone(configs), nil
	})
}

// IncrementalAlterTopicConfigs applies set/delete/append/subtract operations.
func (b *Broker) IncrementalAlterTopicConfigs(name string, ops []ConfigOp, validateOnly bool) error {
	return b.changeConfigs(name, validateOnly, func(cur map[string]string) (map[string]string, error) {
		next := maps.Clone(cur)
		for _, op := range ops {
			d, ok := configDef(op.Name)
			if !ok {
				return nil, fmt.Errorf("%w: unknown topic config %q", ErrInvalidConfig, op.Name)
			}
			switch op.Op {
			case OpSet:
				next[op.Name] = op.Value
			case OpDelete:
				delete(next, op.Name)
			case OpAppend, OpSubtract:
				if d.Type != TypeList {
					return nil, fmt.Errorf("%w: %s is not a list; append and subtract need one", ErrInvalidConfig, op.Name)
				}
				v, _ := configLookup{topic: next, broker: b.cfg.TopicDefaults}.get(op.Name)
				next[op.Name] = editList(v, op.Value, op.Op == OpAppend)
			default:
				return nil, fmt.Errorf("%w: unknown operation %d", ErrInvalidRequest, op.Op)
			}
		}
		return next, nil
	})
}

func editList(cur, items string, add bool) string {
	var out []string
	have := map[string]bool{}
	for _, v := range strings.Split(cur, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out, have[v] = append(out, v), true
		}
	}
	for _, v := range strings.Split(items, ",") {
		v = strings.TrimSpace(v)
		switch {
		case v == "":
		case add && !have[v]:
			out, have[v] = append(out, v), true
		case !add && have[v]:
			for i := range out {
				if out[i] == v {
					out = append(out[:i], out[i+1:]...)
					break
				}
			}
			delete(have, v)
		}
	}
	return strings.Join(out, ",")
}

func (b *Broker) changeConfigs(name string, validateOnly bool, edit func(map[string]string) (map[string]string, error)) error {
	if b.isView(name) {
		return ErrReadOnlyView
	}
	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	t, ok := b.Topic(name)
	if !ok {
		return fmt.Errorf("%w: topic %q", ErrUnknownTopicOrPartition, name)
	}
	t.mu.RLock()
	cur := maps.Clone(t.configs)
	t.mu.RUnlock()
	next, err := edit(cur)
	if err != nil {
		return err
	}
	for n, v := range next {
		if err := ValidateTopicConfig(n, v); err != nil {
			return err
		}
	}
	if validateOnly {
		return nil
	}
	if b.clustered() {
		b.adminMu.Unlock()
		defer b.adminMu.Lock()
		return b.clusterChange(func(ctx context.Context) error { return b.cfg.Cluster.SetTopicConfigs(ctx, name, next) })
	}
	for i := range b.meta.Topics {
		if b.meta.Topics[i].Name == name {
			b.meta.Topics[i].Configs = next
		}
	}
	if err := saveMeta(b.cfg.DataDir, b.meta); err != nil {
		for i := range b.meta.Topics {
			if b.meta.Topics[i].Name == name {
				b.meta.Topics[i].Configs = cur
			}
		}
		return fmt.Errorf("%w: save metadata: %v", ErrStorage, err)
	}
	s := configLookup{topic: next, broker: b.cfg.TopicDefaults}.resolve()
	t.mu.Lock()
	t.configs = next
	t.settings.Store(&s)
	for _, p := range t.partitions {
		p.log.SetConfig(s.log)
	}
	t.mu.Unlock()
	b.logger.Info("altered topic configs", "topic", name, "configs", next)
	return nil
}

// DescribeTopicConfigs lists every config of a topic with its source.
func (b *Broker) DescribeTopicConfigs(name string) ([]ConfigEntry, error) {
	t, ok := b.Topic(name)
	if !ok {
		return nil, fmt.Errorf("%w: topic %q", ErrUnknownTopicOrPartition, name)
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return configLookup{topic: t.configs, broker: b.cfg.TopicDefaults}.entries(), nil
}

// TopicConfigs returns a copy of the configs set on the topic itself.
func (t *Topic) Configs() map[string]string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return maps.Clone(t.configs)
}

// BrokerConfigs lists the broker-level settings DescribeConfigs reports for
// a broker resource: the topic defaults under Kafka's broker names, plus the
// broker's own settings.
func (b *Broker) BrokerConfigs() []ConfigEntry {
	str := func(name, v string, t ConfigType, doc string) ConfigEntry {
		return ConfigEntry{Name: name, Value: v, Source: SourceStaticBroker, Type: t, Doc: doc}
	}
	out := []ConfigEntry{
		str("broker.id", fmt.Sprint(b.cfg.NodeID), TypeInt, "This node's id."),
		str("log.dirs", filepath.Clean(b.cfg.DataDir), TypeString, "Where partition logs live."),
		str("auto.create.topics.enable", fmt.Sprint(b.cfg.AutoCreateTopics), TypeBoolean, "Create unknown topics on metadata and produce requests."),
		str("num.partitions", fmt.Sprint(b.cfg.DefaultPartitions), TypeInt, "Partitions of auto-created topics."),
		str("default.replication.factor", fmt.Sprint(b.cfg.DefaultReplicationFactor), TypeInt, "Replication factor of auto-created topics."),
	}
	brokerName := map[string]string{
		"cleanup.policy": "log.cleanup.policy", "retention.ms": "log.retention.ms", "retention.bytes": "log.retention.bytes",
		"segment.bytes": "log.segment.bytes", "segment.ms": "log.roll.ms", "flush.messages": "log.flush.interval.messages",
		"flush.ms": "log.flush.interval.ms", "max.message.bytes": "message.max.bytes", "index.interval.bytes": "log.index.interval.bytes",
		"message.timestamp.type": "log.message.timestamp.type", "min.insync.replicas": "min.insync.replicas",
		"compression.type": "compression.type", "preallocate": "log.preallocate",
	}
	for _, e := range (configLookup{broker: b.cfg.TopicDefaults}).entries() {
		if n, ok := brokerName[e.Name]; ok {
			e.Name = n
			e.Synonyms = nil
			out = append(out, e)
		}
	}
	return out
}
