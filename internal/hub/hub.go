// Package hub keeps Weir's transform catalog in the cluster: published
// modules (versioned, with a digest), deployed transform definitions, the
// status and logs the brokers running them report, and aggregate state.
// Each lives in a compacted topic of its own (logs in a time-retained
// one), reached over the Kafka protocol, so a single node and a
// replicated cluster keep them the same way and the CLI needs no other
// API.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The catalog's topics.
const (
	ModulesTopic    = "_weir_modules"
	TransformsTopic = "_weir_transforms"
	StatusTopic     = "_weir_transform_status"
	LogsTopic       = "_weir_transform_logs"
	StateTopic      = "_weir_transform_state"
	ViewsTopic      = "_weir_views"
)

// MaxModuleBytes bounds a module's size.
const MaxModuleBytes = 32 << 20

// Errors of the catalog.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

// ParamInfo declares a module parameter.
type ParamInfo struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// ModuleInfo describes a published module.
type ModuleInfo struct {
	Name        string      `json:"name"`
	Version     string      `json:"version"`
	Digest      string      `json:"digest"` // sha256, hex
	Kind        string      `json:"kind"`
	Description string      `json:"description,omitempty"`
	Params      []ParamInfo `json:"params,omitempty"`
	Size        int         `json:"size"`
	Published   time.Time   `json:"published"`
}

// Ref is name@version.
func (m ModuleInfo) Ref() string { return m.Name + "@" + m.Version }

// Error policies of a transform.
const (
	OnErrorSkip       = "skip"
	OnErrorDeadLetter = "dead-letter"
	OnErrorStop       = "stop"
)

// Definition is a deployed transform.
type Definition struct {
	Name    string            `json:"name"`
	Module  string            `json:"module"` // name@version
	Digest  string            `json:"digest"`
	Kind    string            `json:"kind"`
	Input   string            `json:"input"`
	Outputs []string          `json:"outputs"`
	Params  map[string]string `json:"params,omitempty"`
	OnError string            `json:"on_error"`
	// DeadLetter is the topic failed records go to with OnErrorDeadLetter.
	DeadLetter string    `json:"dead_letter,omitempty"`
	Paused     bool      `json:"paused,omitempty"`
	Created    time.Time `json:"created"`
	// StartOffsets is where the transform starts on each input partition
	// that has no progress yet (resolved at deploy from --from: the
	// start or the end of the input); partitions added later start at 0.
	StartOffsets map[int32]int64 `json:"start_offsets,omitempty"`
	// Revision counts the definition's changes (deploy, pause, resume):
	// brokers restart a transform whose revision moved, which is how a
	// resume restarts one its error policy stopped.
	Revision int64 `json:"revision"`
}

// Group is the consumer group whose committed offsets are the
// transform's progress through its input.
func (d Definition) Group() string { return "_weir_transform." + d.Name }

// Validate checks a definition's fields.
func (d *Definition) Validate() error {
	switch {
	case !validName(d.Name):
		return fmt.Errorf("%w: transform name %q (letters, digits, '.', '_' and '-', at most 200)", ErrInvalid, d.Name)
	case d.Input == "":
		return fmt.Errorf("%w: no input topic", ErrInvalid)
	case len(d.Outputs) == 0:
		return fmt.Errorf("%w: no output topic", ErrInvalid)
	case len(d.Outputs) > 254:
		return fmt.Errorf("%w: %d output topics (at most 254)", ErrInvalid, len(d.Outputs))
	}
	for _, o := range d.Outputs {
		if o == d.Input {
			return fmt.Errorf("%w: output topic %s is also the input: the transform would read its own output", ErrInvalid, o)
		}
	}
	switch d.OnError {
	case "":
		d.OnError = OnErrorSkip
	case OnErrorSkip, OnErrorStop:
	case OnErrorDeadLetter:
		if d.DeadLetter == "" {
			d.DeadLetter = d.Name + ".dead-letter"
		}
	default:
		return fmt.Errorf("%w: error policy %q (skip, dead-letter or stop)", ErrInvalid, d.OnError)
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// ParseRef splits name@version; version is "" when absent.
func ParseRef(ref string) (name, version string, err error) {
	name, version, _ = strings.Cut(ref, "@")
	if !validName(name) {
		return "", "", fmt.Errorf("%w: module name %q (letters, digits, '.', '_' and '-')", ErrInvalid, name)
	}
	if strings.Contains(ref, "@") {
		if _, ok := parseVersion(version); !ok {
			return "", "", fmt.Errorf("%w: version %q is not MAJOR.MINOR.PATCH", ErrInvalid, version)
		}
	}
	return name, version, nil
}

// parseVersion parses MAJOR.MINOR.PATCH with an optional -suffix.
func parseVersion(v string) ([3]int, bool) {
	var out [3]int
	core, _, _ := strings.Cut(v, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}

// newer reports whether version a sorts after b.
func newer(a, b string) bool {
	va, _ := parseVersion(a)
	vb, _ := parseVersion(b)
	if va != vb {
		for i := range va {
			if va[i] != vb[i] {
				return va[i] > vb[i]
			}
		}
	}
	return a > b
}

// Status is what a broker running a transform on one input partition
// reports.
type Status struct {
	Transform string `json:"transform"`
	Partition int32  `json:"partition"`
	Node      int32  `json:"node"`
	// State is running, paused, failed (stopped by its error policy or a
	// module that cannot start) or stopped (no longer led here).
	State      string    `json:"state"`
	Offset     int64     `json:"offset"` // next input offset to process
	End        int64     `json:"end"`    // input high watermark
	RecordsIn  int64     `json:"records_in"`
	RecordsOut int64     `json:"records_out"`
	Errors     int64     `json:"errors"`
	RateIn     float64   `json:"rate_in"` // records/s over the last report interval
	LastError  string    `json:"last_error,omitempty"`
	Updated    time.Time `json:"updated"`
}

// Lag is how many input offsets are not processed yet.
func (s Status) Lag() int64 { return max(s.End-s.Offset, 0) }

// StatusKey is the status record's key.
func StatusKey(transform string, partition int32) string {
	return transform + "/" + strconv.Itoa(int(partition))
}

// LogLine is one line a transform logged.
type LogLine struct {
	Time      time.Time `json:"time"`
	Partition int32     `json:"partition"`
	Node      int32     `json:"node"`
	Line      string    `json:"line"`
}

// State is an aggregate's saved state on one input partition: the module's
// snapshot after processing everything before Offset.
type State struct {
	Offset int64  `json:"offset"`
	Digest string `json:"digest"`
	Data   []byte `json:"data"`
}

// Client reads and writes the catalog.
type Client struct {
	cl  *kgo.Client
	adm *kadm.Client
	dec kgo.Decompressor
}

// New connects to the cluster with the given client options (seed brokers
// and, for the CLI, its connection settings).
func New(opts ...kgo.Opt) (*Client, error) {
	all := append([]kgo.Opt{kgo.ProducerBatchMaxBytes(MaxModuleBytes + 1<<20), kgo.RequiredAcks(kgo.AllISRAcks())}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return nil, err
	}
	return &Client{cl: cl, adm: kadm.NewClient(cl), dec: kgo.DefaultDecompressor()}, nil
}

// Close closes the connections.
func (c *Client) Close() { c.cl.Close() }

// Kafka is the client underneath, for writes beside the catalog's.
func (c *Client) Kafka() *kgo.Client { return c.cl }

// EnsureTopics creates the catalog's topics that do not exist yet.
func (c *Client) EnsureTopics(ctx context.Context) error {
	// Small segments that roll hourly, so compaction (which never
	// touches the active segment) keeps the catalog small: status is
	// rewritten every few seconds per running partition.
	compact := func(maxMessage int) map[string]*string {
		return map[string]*string{
			"cleanup.policy":    kadm.StringPtr("compact"),
			"segment.bytes":     kadm.StringPtr(strconv.Itoa(1 << 20)),
			"segment.ms":        kadm.StringPtr(strconv.Itoa(int(time.Hour.Milliseconds()))),
			"max.message.bytes": kadm.StringPtr(strconv.Itoa(maxMessage)),
		}
	}
	specs := map[string]map[string]*string{
		ModulesTopic:    compact(MaxModuleBytes + 1<<20),
		TransformsTopic: compact(1 << 20),
		ViewsTopic:      compact(1 << 20),
		StatusTopic:     compact(1 << 20),
		StateTopic:      compact(64 << 20),
		LogsTopic:       {"retention.ms": kadm.StringPtr(strconv.Itoa(int((24 * time.Hour).Milliseconds())))},
	}
	for topic, cfg := range specs {
		res, err := c.adm.CreateTopic(ctx, 1, -1, cfg, topic)
		if err == nil {
			err = res.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create %s: %w", topic, err)
		}
	}
	return nil
}

// produce writes one record to a catalog topic and waits for it.
func (c *Client) produce(ctx context.Context, r *kgo.Record) error {
	if err := c.EnsureTopics(ctx); err != nil {
		return err
	}
	return c.cl.ProduceSync(ctx, r).FirstErr()
}

// ListOffsets lists the end (or start) offset of every partition of
// topic, waiting up to ten seconds while some partition has no leader: a
// topic created a moment ago (a catalog topic, or the input of a deploy) is
// still electing one. Other errors, and a partition's own, come back as
// kadm reports them.
func ListOffsets(ctx context.Context, adm *kadm.Client, topic string, end bool) (kadm.ListedOffsets, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var offs kadm.ListedOffsets
		var err error
		if end {
			offs, err = adm.ListEndOffsets(ctx, topic)
		} else {
			offs, err = adm.ListStartOffsets(ctx, topic)
		}
		electing := noLeader(err)
		offs.Each(func(o kadm.ListedOffset) { electing = electing || noLeader(o.Err) })
		if !electing || ctx.Err() != nil || time.Now().After(deadline) {
			return offs, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func noLeader(err error) bool {
	return errors.Is(err, kerr.LeaderNotAvailable) || errors.Is(err, kerr.NotLeaderForPartition)
}

// scan calls fn with every record of a topic's single partition from the
// start to its end when scan began. It fetches by hand rather than through
// a consumer: offsets that hold no record (compacted away, or Raft's own
// entries in a cluster) move the position without yielding a record, and
// only the position says when the end is reached.
func (c *Client) scan(ctx context.Context, topic string, fn func(*kgo.Record)) error {
	ends, err := ListOffsets(ctx, c.adm, topic, true)
	if err != nil {
		return err
	}
	end, ok := ends.Lookup(topic, 0)
	if !ok || errors.Is(end.Err, kerr.UnknownTopicOrPartition) {
		return nil // nothing written yet
	}
	if end.Err != nil {
		return end.Err
	}
	offset := int64(0)
	for offset < end.Offset {
		md, err := c.adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		t := md.Topics[topic]
		p, ok := t.Partitions[0]
		if !ok || p.Leader < 0 {
			return fmt.Errorf("read %s: no leader", topic)
		}
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = -1
		req.MaxWaitMillis = 500
		req.MaxBytes = MaxModuleBytes + 1<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, t.ID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = 0, offset, MaxModuleBytes+1<<20
		rp.LogStartOffset, rp.CurrentLeaderEpoch = -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, c.cl.Broker(int(p.Leader)))
		if err != nil {
			return fmt.Errorf("read %s: %w", topic, err)
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return fmt.Errorf("read %s: %w", topic, err)
		}
		for _, rt := range resp.Topics {
			for k := range rt.Partitions {
				fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: topic, Offset: offset}, &rt.Partitions[k], c.dec, nil)
				if fp.Err != nil {
					if errors.Is(fp.Err, kerr.OffsetOutOfRange) && offset < fp.LogStartOffset {
						next = fp.LogStartOffset // retention removed the start
					} else {
						return fmt.Errorf("read %s: %w", topic, fp.Err)
					}
				}
				for _, r := range fp.Records {
					if r.Offset < end.Offset {
						fn(r)
					}
				}
				offset = max(offset, next)
			}
		}
	}
	return nil
}

// ReadAll reads a compacted topic from the start to its current end and
// returns the latest record per key (tombstones remove the key), in offset
// order.
func (c *Client) ReadAll(ctx context.Context, topic string) ([]*kgo.Record, error) {
	latest := map[string]*kgo.Record{}
	err := c.scan(ctx, topic, func(r *kgo.Record) {
		if r.Value == nil {
			delete(latest, string(r.Key))
		} else {
			latest[string(r.Key)] = r
		}
	})
	if err != nil {
		return nil, err
	}
	out := make([]*kgo.Record, 0, len(latest))
	for _, r := range latest {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Offset < out[j].Offset })
	return out, nil
}

// Logs returns the last n lines a transform logged (all with n <= 0).
func (c *Client) Logs(ctx context.Context, name string, n int) ([]LogLine, error) {
	var out []LogLine
	err := c.scan(ctx, LogsTopic, func(r *kgo.Record) {
		var l LogLine
		if string(r.Key) == name && json.Unmarshal(r.Value, &l) == nil {
			out = append(out, l)
		}
	})
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out, err
}

const moduleHeader = "weir.module"

// PublishModule stores a module under info.Name@info.Version. Versions are
// immutable: publishing the same bytes again is a no-op, different bytes
// under a published version are refused.
func (c *Client) PublishModule(ctx context.Context, info ModuleInfo, wasm []byte) error {
	if _, _, err := ParseRef(info.Ref()); err != nil {
		return err
	}
	if len(wasm) > MaxModuleBytes {
		return fmt.Errorf("%w: module is %d bytes (at most %d)", ErrInvalid, len(wasm), MaxModuleBytes)
	}
	if old, _, err := c.Module(ctx, info.Ref()); err == nil {
		if old.Digest == info.Digest {
			return nil
		}
		return fmt.Errorf("%w: %s is already published with digest %s; publish a new version", ErrConflict, info.Ref(), old.Digest[:12])
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	info.Size = len(wasm)
	meta, err := json.Marshal(info)
	if err != nil {
		return err
	}
	return c.produce(ctx, &kgo.Record{Topic: ModulesTopic, Key: []byte(info.Ref()), Value: wasm,
		Headers: []kgo.RecordHeader{{Key: moduleHeader, Value: meta}}})
}

func moduleInfo(r *kgo.Record) (ModuleInfo, bool) {
	for _, h := range r.Headers {
		if h.Key == moduleHeader {
			var m ModuleInfo
			return m, json.Unmarshal(h.Value, &m) == nil
		}
	}
	return ModuleInfo{}, false
}

// Modules lists the published modules, by name then version.
func (c *Client) Modules(ctx context.Context) ([]ModuleInfo, error) {
	recs, err := c.ReadAll(ctx, ModulesTopic)
	if err != nil {
		return nil, err
	}
	var out []ModuleInfo
	for _, r := range recs {
		if m, ok := moduleInfo(r); ok {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return newer(out[j].Version, out[i].Version)
	})
	return out, nil
}

// Module returns a module and its bytes; ref is name@version, or a name
// for its newest version.
func (c *Client) Module(ctx context.Context, ref string) (ModuleInfo, []byte, error) {
	name, version, err := ParseRef(ref)
	if err != nil {
		return ModuleInfo{}, nil, err
	}
	recs, err := c.ReadAll(ctx, ModulesTopic)
	if err != nil {
		return ModuleInfo{}, nil, err
	}
	var best *kgo.Record
	var bestInfo ModuleInfo
	for _, r := range recs {
		m, ok := moduleInfo(r)
		if !ok || m.Name != name || (version != "" && m.Version != version) {
			continue
		}
		if best == nil || newer(m.Version, bestInfo.Version) {
			best, bestInfo = r, m
		}
	}
	if best == nil {
		return ModuleInfo{}, nil, fmt.Errorf("%w: module %s", ErrNotFound, ref)
	}
	return bestInfo, best.Value, nil
}

// DeleteModule removes a published version; a version a transform runs
// cannot be deleted.
func (c *Client) DeleteModule(ctx context.Context, ref string) error {
	m, _, err := c.Module(ctx, ref)
	if err != nil {
		return err
	}
	if _, version, _ := ParseRef(ref); version == "" {
		return fmt.Errorf("%w: name a version to delete (%s)", ErrInvalid, m.Ref())
	}
	defs, err := c.Definitions(ctx)
	if err != nil {
		return err
	}
	for _, d := range defs {
		if d.Module == m.Ref() {
			return fmt.Errorf("%w: transform %s runs %s; delete it first", ErrConflict, d.Name, m.Ref())
		}
	}
	return c.produce(ctx, &kgo.Record{Topic: ModulesTopic, Key: []byte(m.Ref())})
}

// PutDefinition writes a transform definition (a deploy, pause or resume).
func (c *Client) PutDefinition(ctx context.Context, d Definition) error {
	if err := d.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return c.produce(ctx, &kgo.Record{Topic: TransformsTopic, Key: []byte(d.Name), Value: b})
}

// Definitions lists the deployed transforms by name.
func (c *Client) Definitions(ctx context.Context) ([]Definition, error) {
	return readJSON(ctx, c, TransformsTopic, func(d Definition) string { return d.Name })
}

// readJSON decodes the latest value of every key of a compacted topic,
// sorted by name (values that do not decode are skipped).
func readJSON[T any](ctx context.Context, c *Client, topic string, name func(T) string) ([]T, error) {
	recs, err := c.ReadAll(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(recs))
	for _, r := range recs {
		var v T
		if json.Unmarshal(r.Value, &v) == nil {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return name(out[i]) < name(out[j]) })
	return out, nil
}

// Definition returns one deployed transform.
func (c *Client) Definition(ctx context.Context, name string) (Definition, error) {
	defs, err := c.Definitions(ctx)
	if err != nil {
		return Definition{}, err
	}
	for _, d := range defs {
		if d.Name == name {
			return d, nil
		}
	}
	return Definition{}, fmt.Errorf("%w: transform %s", ErrNotFound, name)
}

// DeleteDefinition removes a deployed transform; the brokers stop it.
// Its progress (consumer group) and state are deleted too, so a transform
// deployed again under the name starts afresh.
func (c *Client) DeleteDefinition(ctx context.Context, name string) error {
	d, err := c.Definition(ctx, name)
	if err != nil {
		return err
	}
	if err := c.produce(ctx, &kgo.Record{Topic: TransformsTopic, Key: []byte(name)}); err != nil {
		return err
	}
	statuses, err := c.Statuses(ctx, name)
	if err != nil {
		return err
	}
	for _, s := range statuses {
		key := []byte(StatusKey(name, s.Partition))
		if err := c.produce(ctx, &kgo.Record{Topic: StatusTopic, Key: key}); err != nil {
			return err
		}
		if err := c.produce(ctx, &kgo.Record{Topic: StateTopic, Key: key}); err != nil {
			return err
		}
	}
	// The group empties once the brokers stop; a group still in use
	// cannot be deleted, which is harmless: its offsets are only read by
	// a transform of this name, and a new deploy resets them.
	c.adm.DeleteGroups(ctx, d.Group())
	return nil
}

// Statuses returns the latest status of each input partition of a
// transform ("" for every transform).
func (c *Client) Statuses(ctx context.Context, name string) ([]Status, error) {
	recs, err := c.ReadAll(ctx, StatusTopic)
	if err != nil {
		return nil, err
	}
	var out []Status
	for _, r := range recs {
		var s Status
		if json.Unmarshal(r.Value, &s) == nil && (name == "" || s.Transform == name) {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Transform != out[j].Transform {
			return out[i].Transform < out[j].Transform
		}
		return out[i].Partition < out[j].Partition
	})
	return out, nil
}

// PutStatus writes a runner's status.
func (c *Client) PutStatus(ctx context.Context, s Status) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return c.cl.ProduceSync(ctx, &kgo.Record{Topic: StatusTopic, Key: []byte(StatusKey(s.Transform, s.Partition)), Value: b}).FirstErr()
}

// PutLog writes a line to a transform's log without waiting.
func (c *Client) PutLog(name string, l LogLine) {
	b, err := json.Marshal(l)
	if err != nil {
		return
	}
	c.cl.Produce(context.Background(), &kgo.Record{Topic: LogsTopic, Key: []byte(name), Value: b}, nil)
}

// SaveState writes an aggregate's state on one input partition.
func (c *Client) SaveState(ctx context.Context, name string, partition int32, s State) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return c.cl.ProduceSync(ctx, &kgo.Record{Topic: StateTopic, Key: []byte(StatusKey(name, partition)), Value: b}).FirstErr()
}

// LoadState returns an aggregate's saved state on one input partition.
func (c *Client) LoadState(ctx context.Context, name string, partition int32) (State, bool, error) {
	recs, err := c.ReadAll(ctx, StateTopic)
	if err != nil {
		return State{}, false, err
	}
	key := StatusKey(name, partition)
	for _, r := range recs {
		if string(r.Key) == key {
			var s State
			if err := json.Unmarshal(r.Value, &s); err != nil {
				return State{}, false, fmt.Errorf("state of %s: %w", key, err)
			}
			return s, true, nil
		}
	}
	return State{}, false, nil
}

// Committed returns a transform's committed input offset on a partition.
func (c *Client) Committed(ctx context.Context, d Definition, partition int32) (int64, bool, error) {
	offs, err := c.adm.FetchOffsets(ctx, d.Group())
	if err != nil {
		if errors.Is(err, kerr.GroupIDNotFound) {
			return 0, false, nil
		}
		return 0, false, err
	}
	o, ok := offs.Lookup(d.Input, partition)
	if !ok || o.Err != nil || o.At < 0 {
		return 0, false, nil
	}
	return o.At, true, nil
}

// Commit records a transform's progress: everything before offset is
// done.
func (c *Client) Commit(ctx context.Context, d Definition, partition int32, offset int64) error {
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: d.Input, Partition: partition, At: offset, LeaderEpoch: -1})
	res, err := c.adm.CommitOffsets(ctx, d.Group(), os)
	if err != nil {
		return err
	}
	return res.Error()
}

// View is a lazy view: a read-only topic whose records a filter or map
// module computes from its source topic's at fetch time.
type View struct {
	Name    string            `json:"name"`
	Source  string            `json:"source"`
	Module  string            `json:"module"` // name@version
	Digest  string            `json:"digest"`
	Kind    string            `json:"kind"`
	Params  map[string]string `json:"params,omitempty"`
	Created time.Time         `json:"created"`
}

// ViewKinds are the module kinds a view takes: one record at most per
// source record, at its offset.
func ViewKindAllowed(kind string) bool {
	return kind == "filter" || kind == "map" || kind == "filter-map"
}

// PutView writes a view definition.
func (c *Client) PutView(ctx context.Context, v View) error {
	if !validName(v.Name) {
		return fmt.Errorf("%w: view name %q", ErrInvalid, v.Name)
	}
	if !ViewKindAllowed(v.Kind) {
		return fmt.Errorf("%w: a %s module cannot back a view: a view keeps its source's offsets, so it takes filter, map and filter-map modules only (deploy a transform instead)", ErrInvalid, v.Kind)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.produce(ctx, &kgo.Record{Topic: ViewsTopic, Key: []byte(v.Name), Value: b})
}

// Views lists the views by name.
func (c *Client) Views(ctx context.Context) ([]View, error) {
	return readJSON(ctx, c, ViewsTopic, func(v View) string { return v.Name })
}

// DeleteView removes a view.
func (c *Client) DeleteView(ctx context.Context, name string) error {
	vs, err := c.Views(ctx)
	if err != nil {
		return err
	}
	for _, v := range vs {
		if v.Name == name {
			return c.produce(ctx, &kgo.Record{Topic: ViewsTopic, Key: []byte(name)})
		}
	}
	return fmt.Errorf("%w: view %s", ErrNotFound, name)
}
