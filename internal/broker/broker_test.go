package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/internal/clock"
	"github.com/weir-dev/weir/internal/record"
)

func openBroker(t *testing.T, dir string, clk clock.Clock) *Broker {
	t.Helper()
	b, err := Open(Config{DataDir: dir, AutoCreateTopics: true}, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func idemBatch(t *testing.T, pid int64, epoch int16, seq int32, n int, ts int64) []byte {
	t.Helper()
	rs := make([]record.Record, n)
	for i := range rs {
		rs[i] = record.Record{Value: []byte("v")}
	}
	b, err := record.Build(record.BatchOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, FirstTimestamp: ts}, rs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func produce(t *testing.T, p *Partition, b []byte) ProduceResult {
	t.Helper()
	res, err := p.Produce(b)
	if err != nil {
		t.Fatal(err)
	}
	if res.Committed != nil {
		<-res.Committed.Done()
		if _, err := res.Committed.Result(); err != nil {
			t.Fatal(err)
		}
	}
	return res
}

func TestValidateTopicName(t *testing.T) {
	for _, ok := range []string{"a", "A-b_c.d", strings.Repeat("x", 249), "__internal"} {
		if err := ValidateTopicName(ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", strings.Repeat("x", 250), "a b", "a/b", "ü", "a\x00"} {
		if err := ValidateTopicName(bad); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("%q accepted (%v)", bad, err)
		}
	}
}

func TestTopicConfigValidation(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"retention.ms", "-2"}, {"retention.ms", "abc"}, {"segment.bytes", "10"}, {"cleanup.policy", "shred"},
		{"compression.type", "zstd"}, {"message.timestamp.type", "Now"}, {"preallocate", "yes"}, {"flush.messages", "0"},
		{"unknown.config", "1"},
	} {
		if err := ValidateTopicConfig(tc.name, tc.value); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s=%s accepted (%v)", tc.name, tc.value, err)
		}
	}
	for _, tc := range []struct{ name, value string }{
		{"retention.ms", "-1"}, {"cleanup.policy", "compact,delete"}, {"compression.type", "producer"}, {"flush.ms", "1000"},
	} {
		if err := ValidateTopicConfig(tc.name, tc.value); err != nil {
			t.Errorf("%s=%s rejected: %v", tc.name, tc.value, err)
		}
	}
	s := configLookup{topic: map[string]string{"flush.messages": "100", "flush.ms": "250", "retention.ms": "-1"}}.resolve()
	if s.log.FlushMessages != 100 || s.log.FlushInterval != 250*time.Millisecond || s.log.RetentionAge >= 0 || s.log.SyncsEveryAppend() {
		t.Fatalf("resolved %+v", s.log)
	}
	if d := (configLookup{}).resolve(); !d.log.SyncsEveryAppend() {
		t.Fatal("default must fsync every append")
	}
}

// Producer sequence state survives restarts, clean (snapshot) or not
// (rebuilt from the log), so a retry after a restart is still a duplicate.
func TestProducerStateSurvivesRestart(t *testing.T) {
	for _, clean := range []bool{true, false} {
		name := "crash"
		if clean {
			name = "clean"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			b := openBroker(t, dir, nil)
			topic, err := b.CreateTopic(TopicSpec{Name: "p", Partitions: 1, ReplicationFactor: 1}, false)
			if err != nil {
				t.Fatal(err)
			}
			p, _ := topic.Partition(0)
			pid, _ := b.InitProducerID()
			for i := range 10 {
				produce(t, p, idemBatch(t, pid, 0, int32(i*2), 2, 1))
			}
			if clean {
				b.Close()
			} else {
				// Abandon without closing: logs keep no clean marker and no
				// snapshot was taken since the writes.
				b.syncer.Close()
				for _, tp := range b.topics {
					for _, pp := range tp.partitions {
						pp.log.Sync()
					}
				}
			}
			b2 := openBroker(t, dir, nil)
			defer b2.Close()
			p2, err := b2.Partition("p", 0)
			if err != nil {
				t.Fatal(err)
			}
			res := produce(t, p2, idemBatch(t, pid, 0, 18, 2, 1))
			if res.BaseOffset != 18 || p2.LogEndOffset() != 20 {
				t.Fatalf("retry after restart: base %d, end %d", res.BaseOffset, p2.LogEndOffset())
			}
			if _, err := p2.Produce(idemBatch(t, pid, 0, 30, 1, 1)); !errors.Is(err, ErrOutOfOrderSequence) {
				t.Fatalf("gap after restart: %v", err)
			}
			if res := produce(t, p2, idemBatch(t, pid, 0, 20, 1, 1)); res.BaseOffset != 20 {
				t.Fatalf("next in sequence: %d", res.BaseOffset)
			}
			// Producer ids are never handed out twice across restarts.
			if next, _ := b2.InitProducerID(); next <= pid {
				t.Fatalf("producer id %d reused after %d", next, pid)
			}
		})
	}
}

func TestProducerExpiry(t *testing.T) {
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	b := openBroker(t, t.TempDir(), clk)
	defer b.Close()
	topic, _ := b.CreateTopic(TopicSpec{Name: "e", Partitions: 1, ReplicationFactor: 1}, false)
	p, _ := topic.Partition(0)
	produce(t, p, idemBatch(t, 7, 0, 0, 1, clk.Now().UnixMilli()))
	clk.Advance(25 * time.Hour)
	b.RunMaintenance()
	// An expired producer is unknown again, so any sequence restarts it.
	if res := produce(t, p, idemBatch(t, 7, 0, 42, 1, clk.Now().UnixMilli())); res.BaseOffset != 1 {
		t.Fatalf("after expiry: %d", res.BaseOffset)
	}
}

func TestRetentionThroughMaintenance(t *testing.T) {
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	b := openBroker(t, t.TempDir(), clk)
	defer b.Close()
	topic, err := b.CreateTopic(TopicSpec{Name: "r", Partitions: 1, ReplicationFactor: 1,
		Configs: map[string]string{"retention.ms": "60000", "segment.bytes": "1024"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := topic.Partition(0)
	for range 20 {
		produce(t, p, idemBatch(t, -1, -1, -1, 5, clk.Now().UnixMilli()))
	}
	clk.Advance(2 * time.Minute)
	b.RunMaintenance()
	if p.LogStartOffset() != p.LogEndOffset() {
		t.Fatalf("expired data kept: start %d end %d", p.LogStartOffset(), p.LogEndOffset())
	}
	if _, err := p.Read(nil, 0, 100, true, false); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read of deleted offset: %v", err)
	}
}

func TestRelaxedFlushAcknowledgesBeforeFsync(t *testing.T) {
	b := openBroker(t, t.TempDir(), nil)
	defer b.Close()
	topic, _ := b.CreateTopic(TopicSpec{Name: "fast", Partitions: 1, ReplicationFactor: 1,
		Configs: map[string]string{"flush.messages": "100000", "flush.ms": "60000"}}, false)
	p, _ := topic.Partition(0)
	res, err := p.Produce(idemBatch(t, -1, -1, -1, 3, 1))
	if err != nil || res.Committed != nil {
		t.Fatalf("relaxed produce: %v, durable wait %v", err, res.Committed)
	}
	// Readers see it once it is written to the file, without an fsync.
	deadline := time.After(10 * time.Second)
	for {
		changed := p.Changed()
		if p.HighWatermark() == 3 {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("relaxed write not visible: hw %d", p.HighWatermark())
		}
	}
	if d := p.log.DurableOffset(); d != 0 {
		t.Fatalf("relaxed write was fsynced at once (durable %d)", d)
	}
}

func TestTopicLifecycleAndStrayDirs(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir, nil)
	if _, err := b.CreateTopic(TopicSpec{Name: "life", Partitions: 2, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic(TopicSpec{Name: "life", Partitions: 1, ReplicationFactor: 1}, false); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := b.CreatePartitions("life", 2, false); !errors.Is(err, ErrInvalidPartitions) {
		t.Fatalf("shrink or same: %v", err)
	}
	if err := b.CreatePartitions("life", 4, false); err != nil {
		t.Fatal(err)
	}
	p, _ := b.Partition("life", 3)
	produce(t, p, idemBatch(t, -1, -1, -1, 1, 1))
	if err := b.DeleteTopic("life"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic(TopicSpec{Name: "life", Partitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("recreate: %v", err)
	}
	p, _ = b.Partition("life", 0)
	if p.LogEndOffset() != 0 {
		t.Fatal("recreated topic has old data")
	}
	b.Close()
	// A directory no topic owns (a deletion cut short) is removed at start.
	stray := filepath.Join(dir, topicsSubdir, "gone-0")
	os.MkdirAll(stray, 0o755)
	b = openBroker(t, dir, nil)
	defer b.Close()
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Fatalf("stray dir kept: %v", err)
	}
	if topic, ok := b.Topic("life"); !ok || topic.NumPartitions() != 1 {
		t.Fatal("topic lost over restart")
	}
}

func TestDamagedMetadataRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir, nil)
	b.CreateTopic(TopicSpec{Name: "m", Partitions: 1, ReplicationFactor: 1}, false)
	b.Close()
	path := filepath.Join(dir, metaDir, metaFile)
	data, _ := os.ReadFile(path)
	data[10] ^= 0xff
	os.WriteFile(path, data, 0o644)
	if _, err := Open(Config{DataDir: dir}, nil, nil); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged metadata: %v", err)
	}
}

func TestTimestampBounds(t *testing.T) {
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	b := openBroker(t, t.TempDir(), clk)
	defer b.Close()
	topic, _ := b.CreateTopic(TopicSpec{Name: "ts", Partitions: 1, ReplicationFactor: 1,
		Configs: map[string]string{"message.timestamp.before.max.ms": "1000"}}, false)
	p, _ := topic.Partition(0)
	if _, err := p.Produce(idemBatch(t, -1, -1, -1, 1, clk.Now().UnixMilli()-5000)); !errors.Is(err, ErrInvalidTimestamp) {
		t.Fatalf("old timestamp: %v", err)
	}
	b.AlterTopicConfigs("ts", map[string]string{"message.timestamp.type": "LogAppendTime"}, false)
	res := produce(t, p, idemBatch(t, -1, -1, -1, 1, 5))
	if res.LogAppendTime != clk.Now().UnixMilli() {
		t.Fatalf("log append time %d", res.LogAppendTime)
	}
	off, ts, found, err := p.OffsetForTimestamp(clk.Now().UnixMilli())
	if err != nil || !found || off != 0 || ts != clk.Now().UnixMilli() {
		t.Fatalf("lookup: %d %d %v %v", off, ts, found, err)
	}
}

func TestCompactionThroughMaintenance(t *testing.T) {
	clk := clock.NewFake(time.UnixMilli(1_700_000_000_000))
	b := openBroker(t, t.TempDir(), clk)
	defer b.Close()
	topic, err := b.CreateTopic(TopicSpec{Name: "kv", Partitions: 1, ReplicationFactor: 1,
		Configs: map[string]string{"cleanup.policy": "compact", "segment.bytes": "1024", "retention.ms": "1"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := topic.Partition(0)
	// 10 keys, each written 20 times; the last value of key k is "k-19".
	for round := range 20 {
		for k := range 10 {
			batch, _ := record.Build(record.BatchOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, FirstTimestamp: clk.Now().UnixMilli()},
				[]record.Record{{Key: []byte(fmt.Sprint(k)), Value: []byte(fmt.Sprintf("%d-%d", k, round))}})
			produce(t, p, batch)
		}
	}
	clk.Advance(time.Hour) // retention.ms=1 must not delete a compact-only topic
	b.RunMaintenance()
	latest := map[string]string{}
	count := 0
	off := p.LogStartOffset()
	for off < p.HighWatermark() {
		rr, err := p.Read(nil, off, 1<<20, true, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(rr.Batches) == 0 {
			break
		}
		for b := rr.Batches; len(b) > 0; b = b[record.PeekSize(b):] {
			record.ForEachRecord(b[:record.PeekSize(b)], nil, func(h *record.Header, r *record.Record) error {
				latest[string(r.Key)] = string(r.Value)
				count++
				return nil
			})
			off = record.PeekLastOffset(b) + 1
		}
	}
	if p.LogStartOffset() != 0 {
		t.Fatalf("retention deleted data of a compact-only topic: start %d", p.LogStartOffset())
	}
	for k := range 10 {
		if v := latest[fmt.Sprint(k)]; v != fmt.Sprintf("%d-19", k) {
			t.Fatalf("key %d = %q", k, v)
		}
	}
	// Only the active segment's records may still repeat keys.
	if count >= 200 {
		t.Fatalf("nothing was compacted: %d records left", count)
	}
}
