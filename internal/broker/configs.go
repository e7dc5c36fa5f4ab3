package broker

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/weir-dev/weir/internal/storage"
)

// ConfigType is the type of a config value as DescribeConfigs reports it.
type ConfigType int8

// Kafka's config types.
const (
	TypeBoolean ConfigType = 1
	TypeString  ConfigType = 2
	TypeInt     ConfigType = 3
	TypeLong    ConfigType = 5
	TypeDouble  ConfigType = 6
	TypeList    ConfigType = 7
)

// ConfigSource says where a config value comes from.
type ConfigSource int8

// Kafka's config sources.
const (
	SourceTopic         ConfigSource = 1 // set on the topic
	SourceStaticBroker  ConfigSource = 4 // set in the broker's configuration file
	SourceDefault       ConfigSource = 5 // built in
	SourceDynamicBroker ConfigSource = 2
)

// ConfigDef describes one topic config Weir understands.
type ConfigDef struct {
	Name    string
	Type    ConfigType
	Default string
	Doc     string
	check   func(v string) error
}

// settings is a topic's resolved configuration.
type settings struct {
	log             storage.Config
	maxMessageBytes int
	logAppendTime   bool
	compact         bool
	deleteRetention time.Duration // delete.retention.ms: how long tombstones stay
	cleanableRatio  float64       // min.cleanable.dirty.ratio
	maxTSBefore     int64         // ms a CreateTime may lie in the past; MaxInt64 = any
	maxTSAfter      int64         // ms a CreateTime may lie in the future
}

func longRange(min, max int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		if n < min || n > max {
			return fmt.Errorf("%d is not in [%d, %d]", n, min, max)
		}
		return nil
	}
}

func oneOf(values ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(values, v) {
			return fmt.Errorf("%q is not one of %s", v, strings.Join(values, ", "))
		}
		return nil
	}
}

func boolean(v string) error {
	if _, err := strconv.ParseBool(v); err != nil || (v != "true" && v != "false") {
		return fmt.Errorf("%q is not true or false", v)
	}
	return nil
}

func ratio(v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1 {
		return fmt.Errorf("%q is not a number in [0, 1]", v)
	}
	return nil
}

func cleanupPolicy(v string) error {
	parts := strings.Split(v, ",")
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "delete" && p != "compact" {
			return fmt.Errorf("%q is not delete, compact or both", v)
		}
	}
	return nil
}

func compressionType(v string) error {
	if v == "producer" {
		return nil
	}
	if err := oneOf("uncompressed", "gzip", "snappy", "lz4", "zstd")(v); err != nil {
		return err
	}
	return fmt.Errorf("%q is not supported: Weir stores batches as the producer compressed them; use producer", v)
}

const maxLong = math.MaxInt64

// topicConfigDefs lists every topic config Weir accepts, with Kafka's names.
// Unknown names are rejected, as Kafka does.
var topicConfigDefs = []ConfigDef{
	{Name: "cleanup.policy", Type: TypeList, Default: "delete", check: cleanupPolicy,
		Doc: "delete: old segments are removed by retention.ms/retention.bytes. compact: the latest record per key is kept (records need keys), tombstones go after delete.retention.ms. Both may be set."},
	{Name: "compression.type", Type: TypeString, Default: "producer", check: compressionType,
		Doc: "Batches are stored exactly as the producer compressed them (producer)."},
	{Name: "delete.retention.ms", Type: TypeLong, Default: "86400000", check: longRange(0, maxLong),
		Doc: "How long tombstones are kept on compacted topics."},
	{Name: "flush.messages", Type: TypeLong, Default: "1", check: longRange(1, maxLong),
		Doc: "Records that may be written before an fsync. 1 (default) fsyncs every write before it is acknowledged; larger values acknowledge from the page cache."},
	{Name: "flush.ms", Type: TypeLong, Default: strconv.FormatInt(maxLong, 10), check: longRange(0, maxLong),
		Doc: "With flush.messages > 1, the longest a write may stay unsynced."},
	{Name: "index.interval.bytes", Type: TypeInt, Default: "4096", check: longRange(0, math.MaxInt32),
		Doc: "Bytes of batches between offset index entries."},
	{Name: "max.message.bytes", Type: TypeInt, Default: "1048588", check: longRange(0, math.MaxInt32),
		Doc: "Largest record batch the topic accepts."},
	{Name: "message.timestamp.type", Type: TypeString, Default: "CreateTime", check: oneOf("CreateTime", "LogAppendTime"),
		Doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's clock."},
	{Name: "message.timestamp.before.max.ms", Type: TypeLong, Default: strconv.FormatInt(maxLong, 10), check: longRange(0, maxLong),
		Doc: "How far in the past a CreateTime timestamp may be."},
	{Name: "message.timestamp.after.max.ms", Type: TypeLong, Default: strconv.FormatInt(maxLong, 10), check: longRange(0, maxLong),
		Doc: "How far in the future a CreateTime timestamp may be."},
	{Name: "min.cleanable.dirty.ratio", Type: TypeDouble, Default: "0.5", check: ratio,
		Doc: "A compacted partition is cleaned when the share of its cleanable bytes written since the last cleaning reaches this."},
	{Name: "min.compaction.lag.ms", Type: TypeLong, Default: "0", check: longRange(0, maxLong),
		Doc: "Accepted for compatibility; not applied yet (records become cleanable once their segment is sealed)."},
	{Name: "max.compaction.lag.ms", Type: TypeLong, Default: strconv.FormatInt(maxLong, 10), check: longRange(1, maxLong),
		Doc: "Accepted for compatibility; not applied yet (cleaning follows min.cleanable.dirty.ratio)."},
	{Name: "min.insync.replicas", Type: TypeInt, Default: "1", check: longRange(1, math.MaxInt32),
		Doc: "Replicas that must have a write for acks=all. A single node always has one."},
	{Name: "preallocate", Type: TypeBoolean, Default: "false", check: boolean,
		Doc: "Accepted for compatibility with Kafka tooling; it has no effect. Weir writes segments with direct I/O in whole blocks and does not preallocate them (docs/ARCHITECTURE.md)."},
	{Name: "retention.bytes", Type: TypeLong, Default: "-1", check: longRange(-1, maxLong),
		Doc: "Largest size a partition may grow to before its oldest segments are deleted; -1 for no limit."},
	{Name: "retention.ms", Type: TypeLong, Default: "604800000", check: longRange(-1, maxLong),
		Doc: "How long records are kept; -1 forever."},
	{Name: "segment.bytes", Type: TypeInt, Default: "134217728", check: longRange(14, 1<<30),
		Doc: "Size at which a segment file is rolled."},
	{Name: "segment.ms", Type: TypeLong, Default: "604800000", check: longRange(1, maxLong),
		Doc: "Age at which a segment file is rolled."},
}

// TopicConfigDefs returns the accepted topic configs, sorted by name.
func TopicConfigDefs() []ConfigDef {
	defs := slices.Clone(topicConfigDefs)
	sort.Slice(defs, func(i, j int) bool { return defs[i].Name < defs[j].Name })
	return defs
}

func configDef(name string) (ConfigDef, bool) {
	for _, d := range topicConfigDefs {
		if d.Name == name {
			return d, true
		}
	}
	return ConfigDef{}, false
}

// ValidateTopicConfig checks one name and value.
func ValidateTopicConfig(name, value string) error {
	d, ok := configDef(name)
	if !ok {
		return fmt.Errorf("%w: unknown topic config %q", ErrInvalidConfig, name)
	}
	if err := d.check(value); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidConfig, name, err)
	}
	return nil
}

// configLookup resolves a config: the topic's value, else the broker's
// default from its configuration file, else the built-in default.
type configLookup struct {
	topic  map[string]string
	broker map[string]string
}

func (c configLookup) get(name string) (string, ConfigSource) {
	if v, ok := c.topic[name]; ok {
		return v, SourceTopic
	}
	if v, ok := c.broker[name]; ok {
		return v, SourceStaticBroker
	}
	d, _ := configDef(name)
	return d.Default, SourceDefault
}

func (c configLookup) long(name string) int64 {
	v, _ := c.get(name)
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

func msDuration(ms int64) time.Duration {
	if ms < 0 {
		return -1
	}
	if ms > math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// resolve turns validated config values into the settings the log and the
// produce path use.
func (c configLookup) resolve() settings {
	var s settings
	s.log = storage.DefaultConfig()
	s.log.SegmentBytes = c.long("segment.bytes")
	s.log.SegmentAge = msDuration(c.long("segment.ms"))
	s.log.IndexIntervalBytes = int(c.long("index.interval.bytes"))
	s.log.RetentionBytes = c.long("retention.bytes")
	s.log.RetentionAge = msDuration(c.long("retention.ms"))
	s.log.FlushMessages = c.long("flush.messages")
	if ms := c.long("flush.ms"); ms < maxLong {
		s.log.FlushInterval = msDuration(ms)
		if ms == 0 {
			s.log.FlushMessages = 1 // flush.ms=0 means flush every write
		}
	}
	s.maxMessageBytes = int(c.long("max.message.bytes"))
	v, _ := c.get("message.timestamp.type")
	s.logAppendTime = v == "LogAppendTime"
	v, _ = c.get("cleanup.policy")
	s.compact = strings.Contains(v, "compact")
	if !strings.Contains(v, "delete") {
		// compact alone: the latest value per key stays for good.
		s.log.RetentionAge, s.log.RetentionBytes = -1, -1
	}
	s.deleteRetention = msDuration(c.long("delete.retention.ms"))
	ratio, _ := c.get("min.cleanable.dirty.ratio")
	s.cleanableRatio, _ = strconv.ParseFloat(ratio, 64)
	s.maxTSBefore = c.long("message.timestamp.before.max.ms")
	s.maxTSAfter = c.long("message.timestamp.after.max.ms")
	return s
}

// ConfigEntry is one config of a topic as DescribeConfigs reports it.
type ConfigEntry struct {
	Name   string
	Value  string
	Source ConfigSource
	Type   ConfigType
	Doc    string
	// Synonyms lists the values in order of precedence (topic, broker,
	// default) where set.
	Synonyms []ConfigSynonym
}

// ConfigSynonym is one level a config value could come from.
type ConfigSynonym struct {
	Name   string
	Value  string
	Source ConfigSource
}

func (c configLookup) entries() []ConfigEntry {
	var out []ConfigEntry
	for _, d := range TopicConfigDefs() {
		v, src := c.get(d.Name)
		e := ConfigEntry{Name: d.Name, Value: v, Source: src, Type: d.Type, Doc: d.Doc}
		if tv, ok := c.topic[d.Name]; ok {
			e.Synonyms = append(e.Synonyms, ConfigSynonym{d.Name, tv, SourceTopic})
		}
		if bv, ok := c.broker[d.Name]; ok {
			e.Synonyms = append(e.Synonyms, ConfigSynonym{d.Name, bv, SourceStaticBroker})
		}
		e.Synonyms = append(e.Synonyms, ConfigSynonym{d.Name, d.Default, SourceDefault})
		out = append(out, e)
	}
	return out
}
