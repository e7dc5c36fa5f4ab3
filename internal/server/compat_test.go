package server_test

// Client compatibility: three independent Kafka clients (franz-go, IBM
// sarama, segmentio kafka-go) produce 100,000 records each over several
// partitions with every compression codec, keys and headers, and read them
// back byte for byte from an in-process broker.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	segkafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/server/servertest"
)

const (
	compatRecords    = 100_000
	compatPartitions = 4
)

var codecNames = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// testRecord is what every client writes and must read back.
type testRecord struct {
	key, value []byte
	hkey       string
	hval       []byte
}

// makeRecords returns n deterministic records with varied sizes, binary
// values, keys and one header each.
func makeRecords(seed uint64, n int) []testRecord {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	out := make([]testRecord, n)
	for i := range out {
		v := make([]byte, 1+rng.IntN(400))
		for j := range v {
			v[j] = byte(rng.IntN(256))
		}
		out[i] = testRecord{
			key:   []byte(fmt.Sprintf("key-%d", i)),
			value: v,
			hkey:  "seq",
			hval:  []byte(fmt.Sprint(i)),
		}
	}
	return out
}

// byKey checks that got holds exactly want (any order across partitions,
// but per key identical bytes) and that offsets within each partition are
// dense and increasing.
func checkReadBack(t *testing.T, label string, want []testRecord, got []testRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: read %d records, want %d", label, len(got), len(want))
	}
	idx := map[string]int{}
	for i, r := range want {
		idx[string(r.key)] = i
	}
	seen := make([]bool, len(want))
	for _, g := range got {
		i, ok := idx[string(g.key)]
		if !ok {
			t.Fatalf("%s: unexpected key %q", label, g.key)
		}
		if seen[i] {
			t.Fatalf("%s: key %q read twice", label, g.key)
		}
		seen[i] = true
		w := want[i]
		if !bytes.Equal(g.value, w.value) || g.hkey != w.hkey || !bytes.Equal(g.hval, w.hval) {
			t.Fatalf("%s: record %q differs: value %d bytes (want %d), header %s=%s", label, g.key, len(g.value), len(w.value), g.hkey, g.hval)
		}
	}
}

type offsetTracker struct {
	mu   sync.Mutex
	next map[int32]int64
}

func (o *offsetTracker) check(t *testing.T, label string, partition int32, offset int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.next == nil {
		o.next = map[int32]int64{}
	}
	if offset != o.next[partition] {
		t.Errorf("%s: partition %d offset %d, want %d (gap or repeat)", label, partition, offset, o.next[partition])
	}
	o.next[partition] = offset + 1
}

func TestCompatFranzGo(t *testing.T) {
	n := servertest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	all := makeRecords(1, compatRecords)
	per := compatRecords / len(codecNames)
	codecs := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}
	adm := kadm.NewClient(mustFranz(t, kgo.SeedBrokers(n.Addr())))
	defer adm.Close()
	for ci, name := range codecNames {
		topic := "franz-" + name
		if _, err := adm.CreateTopic(ctx, compatPartitions, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
		recs := all[ci*per : (ci+1)*per]
		cl := mustFranz(t, kgo.SeedBrokers(n.Addr()), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(codecs[name]),
			kgo.ProducerLinger(2*time.Millisecond))
		var wg sync.WaitGroup
		var failed error
		var mu sync.Mutex
		for _, r := range recs {
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Key: r.key, Value: r.value, Headers: []kgo.RecordHeader{{Key: r.hkey, Value: r.hval}}}, func(_ *kgo.Record, err error) {
				defer wg.Done()
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		cl.Close()
		if failed != nil {
			t.Fatalf("%s produce: %v", name, failed)
		}
		got := consumeFranz(t, ctx, n.Addr(), topic, len(recs))
		checkReadBack(t, "franz-go "+name, recs, got)
	}
}

func mustFranz(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func consumeFranz(t *testing.T, ctx context.Context, addr, topic string, want int) []testRecord {
	t.Helper()
	cl := mustFranz(t, kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	var got []testRecord
	var offs offsetTracker
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume %s after %d records: %v", topic, len(got), err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			offs.check(t, topic, r.Partition, r.Offset)
			tr := testRecord{key: r.Key, value: r.Value}
			if len(r.Headers) == 1 {
				tr.hkey, tr.hval = r.Headers[0].Key, r.Headers[0].Value
			}
			got = append(got, tr)
		})
	}
	return got
}

func TestCompatSarama(t *testing.T) {
	n := servertest.Start(t, nil)
	all := makeRecords(2, compatRecords)
	per := compatRecords / len(codecNames)
	codecs := map[string]sarama.CompressionCodec{"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy, "lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD}
	for ci, name := range codecNames {
		// Alternate an old protocol generation (Kafka 1.0: Produce v5,
		// Fetch v6) and sarama's default one.
		version := sarama.V1_0_0_0
		if ci%2 == 1 || name == "zstd" { // zstd needs Kafka 2.1+
			version = sarama.V2_8_0_0
		}
		t.Run(fmt.Sprintf("%s-%s", name, version), func(t *testing.T) {
			cfg := sarama.NewConfig()
			cfg.Version = version
			cfg.ClientID = "weir-compat"
			cfg.Producer.Return.Successes = true
			cfg.Producer.RequiredAcks = sarama.WaitForAll
			cfg.Producer.Compression = codecs[name]
			cfg.Producer.Idempotent = true
			cfg.Producer.Flush.Frequency = 2 * time.Millisecond
			cfg.Net.MaxOpenRequests = 1
			cfg.Producer.Partitioner = sarama.NewHashPartitioner
			cfg.Consumer.Return.Errors = true
			topic := "sarama-" + name
			admin, err := sarama.NewClusterAdmin([]string{n.Addr()}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: compatPartitions, ReplicationFactor: 1}, false); err != nil {
				t.Fatal(err)
			}
			admin.Close()

			recs := all[ci*per : (ci+1)*per]
			p, err := sarama.NewAsyncProducer([]string{n.Addr()}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				acked := 0
				for acked < len(recs) {
					select {
					case <-p.Successes():
						acked++
					case err := <-p.Errors():
						done <- err
						return
					}
				}
				done <- nil
			}()
			for _, r := range recs {
				p.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.ByteEncoder(r.key), Value: sarama.ByteEncoder(r.value),
					Headers: []sarama.RecordHeader{{Key: []byte(r.hkey), Value: r.hval}}}
			}
			if err := <-done; err != nil {
				t.Fatalf("produce: %v", err)
			}
			p.Close()

			c, err := sarama.NewConsumer([]string{n.Addr()}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var got []testRecord
			var offs offsetTracker
			msgs := make(chan *sarama.ConsumerMessage)
			errs := make(chan error, compatPartitions)
			for part := range int32(compatPartitions) {
				pc, err := c.ConsumePartition(topic, part, sarama.OffsetOldest)
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				go func() {
					for {
						select {
						case m, ok := <-pc.Messages():
							if !ok {
								return
							}
							msgs <- m
						case e, ok := <-pc.Errors():
							if ok {
								errs <- e
							}
							return
						}
					}
				}()
			}
			timeout := time.NewTimer(2 * time.Minute)
			defer timeout.Stop()
			for len(got) < len(recs) {
				select {
				case m := <-msgs:
					offs.check(t, topic, m.Partition, m.Offset)
					tr := testRecord{key: m.Key, value: m.Value}
					if len(m.Headers) == 1 {
						tr.hkey, tr.hval = string(m.Headers[0].Key), m.Headers[0].Value
					}
					got = append(got, tr)
				case err := <-errs:
					t.Fatalf("consume: %v", err)
				case <-timeout.C:
					t.Fatalf("consumed %d of %d records before the deadline", len(got), len(recs))
				}
			}
			checkReadBack(t, "sarama "+name, recs, got)
		})
	}
}

func TestCompatKafkaGo(t *testing.T) {
	n := servertest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	all := makeRecords(3, compatRecords)
	per := compatRecords / len(codecNames)
	codecs := map[string]segkafka.Compression{"none": 0, "gzip": segkafka.Gzip, "snappy": segkafka.Snappy, "lz4": segkafka.Lz4, "zstd": segkafka.Zstd}
	conn, err := segkafka.DialContext(ctx, "tcp", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// kafka-go's transport caches metadata for seconds, so create every
	// topic before the first writer looks.
	for _, name := range codecNames {
		if err := conn.CreateTopics(segkafka.TopicConfig{Topic: "kafkago-" + name, NumPartitions: compatPartitions, ReplicationFactor: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for ci, name := range codecNames {
		topic := "kafkago-" + name
		recs := all[ci*per : (ci+1)*per]
		w := &segkafka.Writer{Addr: segkafka.TCP(n.Addr()), Topic: topic, Balancer: &segkafka.Hash{}, Compression: codecs[name],
			BatchSize: 500, BatchTimeout: 2 * time.Millisecond, RequiredAcks: segkafka.RequireAll, Transport: &segkafka.Transport{}}
		msgs := make([]segkafka.Message, len(recs))
		for i, r := range recs {
			msgs[i] = segkafka.Message{Key: r.key, Value: r.value, Headers: []segkafka.Header{{Key: r.hkey, Value: r.hval}}}
		}
		for i := 0; i < len(msgs); i += 5000 {
			if err := w.WriteMessages(ctx, msgs[i:min(i+5000, len(msgs))]...); err != nil {
				t.Fatalf("%s produce: %v", name, err)
			}
		}
		w.Close()

		var got []testRecord
		var offs offsetTracker
		for part := range compatPartitions {
			r := segkafka.NewReader(segkafka.ReaderConfig{Brokers: []string{n.Addr()}, Topic: topic, Partition: part, MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 100 * time.Millisecond})
			pconn, err := segkafka.DialLeader(ctx, "tcp", n.Addr(), topic, part)
			if err != nil {
				t.Fatal(err)
			}
			end, err := pconn.ReadLastOffset()
			pconn.Close()
			if err != nil {
				t.Fatal(err)
			}
			for m := int64(0); m < end; m++ {
				msg, err := r.ReadMessage(ctx)
				if err != nil {
					t.Fatalf("%s consume partition %d: %v", name, part, err)
				}
				offs.check(t, topic, int32(msg.Partition), msg.Offset)
				tr := testRecord{key: msg.Key, value: msg.Value}
				if len(msg.Headers) == 1 {
					tr.hkey, tr.hval = msg.Headers[0].Key, msg.Headers[0].Value
				}
				got = append(got, tr)
			}
			r.Close()
		}
		checkReadBack(t, "kafka-go "+name, recs, got)
	}
}

// TestRestartKeepsAcknowledged restarts the broker in the middle of a
// producer's stream: every acknowledged record must be readable afterwards,
// exactly once.
func TestRestartKeepsAcknowledged(t *testing.T) {
	n := servertest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := mustFranz(t, kgo.SeedBrokers(n.Addr()), kgo.DefaultProduceTopic("restart"), kgo.AllowAutoTopicCreation(),
		kgo.RecordRetries(1000), kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }))
	defer cl.Close()
	recs := makeRecords(4, 20_000)
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	produce := func(rs []testRecord) {
		for _, r := range rs {
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Key: r.key, Value: r.value, Headers: []kgo.RecordHeader{{Key: r.hkey, Value: r.hval}}}, func(rec *kgo.Record, err error) {
				defer wg.Done()
				if err == nil {
					mu.Lock()
					acked[string(rec.Key)] = true
					mu.Unlock()
				}
			})
		}
	}
	produce(recs[:10_000])
	// Restart while the first half is still in flight.
	n.Restart()
	produce(recs[10_000:])
	wg.Wait()
	if len(acked) < len(recs)/2 {
		t.Fatalf("only %d of %d records were acknowledged", len(acked), len(recs))
	}
	got := consumeFranz(t, ctx, n.Addr(), "restart", len(acked))
	seen := map[string]bool{}
	for _, g := range got {
		if seen[string(g.key)] {
			t.Fatalf("record %s duplicated", g.key)
		}
		seen[string(g.key)] = true
	}
	var missing []string
	for k := range acked {
		if !seen[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged records lost, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
}

// TestListOffsetsByTime checks timestamp lookups through two clients.
func TestListOffsetsByTime(t *testing.T) {
	n := servertest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := mustFranz(t, kgo.SeedBrokers(n.Addr()), kgo.DefaultProduceTopic("times"), kgo.AllowAutoTopicCreation())
	defer cl.Close()
	base := time.UnixMilli(1_750_000_000_000)
	var batch []*kgo.Record
	for i := range 100 {
		batch = append(batch, &kgo.Record{Value: []byte(fmt.Sprint(i)), Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	// Produce one by one so records span several batches.
	for _, r := range batch {
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	for _, tc := range []struct {
		at   time.Time
		want int64
	}{{base.Add(-time.Hour), 0}, {base, 0}, {base.Add(41500 * time.Millisecond), 42}, {base.Add(99 * time.Second), 99}, {base.Add(time.Hour), 100}} {
		res, err := adm.ListOffsetsAfterMilli(ctx, tc.at.UnixMilli(), "times")
		if err != nil {
			t.Fatal(err)
		}
		o, ok := res.Lookup("times", 0)
		if !ok || o.Err != nil {
			t.Fatalf("lookup %v: %v", tc.at, o.Err)
		}
		if o.Offset != tc.want {
			t.Errorf("franz-go: offset after %v = %d, want %d", tc.at.Sub(base), o.Offset, tc.want)
		}
	}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	sc, err := sarama.NewClient([]string{n.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	off, err := sc.GetOffset("times", 0, base.Add(10*time.Second).UnixMilli())
	if err != nil || off != 10 {
		t.Fatalf("sarama: offset at +10s = %d, %v", off, err)
	}
	if off, err := sc.GetOffset("times", 0, sarama.OffsetNewest); err != nil || off != 100 {
		t.Fatalf("sarama newest = %d, %v", off, err)
	}
	if off, err := sc.GetOffset("times", 0, sarama.OffsetOldest); err != nil || off != 0 {
		t.Fatalf("sarama oldest = %d, %v", off, err)
	}
}

// TestTopicAdmin drives topic administration through kadm and sarama.
func TestTopicAdmin(t *testing.T) {
	n := servertest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(mustFranz(t, kgo.SeedBrokers(n.Addr())))
	defer adm.Close()

	retention := "3600000"
	res, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": &retention, "cleanup.policy": strp("compact")}, "admin-a")
	if err != nil || res.Err != nil {
		t.Fatalf("create: %v %v", err, res.Err)
	}
	// Invalid requests get Kafka's error codes.
	bad := "nope"
	if r, _ := adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": &bad}, "admin-bad"); !errors.Is(r.Err, kerrInvalidConfig) {
		t.Fatalf("invalid config: %v", r.Err)
	}
	if r, _ := adm.CreateTopic(ctx, 1, 1, map[string]*string{"no.such.config": &bad}, "admin-bad"); !errors.Is(r.Err, kerrInvalidConfig) {
		t.Fatalf("unknown config: %v", r.Err)
	}
	if r, _ := adm.CreateTopic(ctx, 1, 1, nil, "bad/name"); !errors.Is(r.Err, kerrInvalidTopic) {
		t.Fatalf("invalid name: %v", r.Err)
	}
	if r, _ := adm.CreateTopic(ctx, 1, 3, nil, "admin-rf"); !errors.Is(r.Err, kerrInvalidReplication) {
		t.Fatalf("replication factor 3: %v", r.Err)
	}
	if r, _ := adm.CreateTopic(ctx, 1, 1, nil, "admin-a"); !errors.Is(r.Err, kerrTopicExists) {
		t.Fatalf("duplicate: %v", r.Err)
	}
	if r, _ := adm.ValidateCreateTopics(ctx, 2, 1, nil, "admin-dry"); r["admin-dry"].Err != nil {
		t.Fatalf("validate only: %v", r["admin-dry"].Err)
	}
	if td, _ := adm.ListTopics(ctx, "admin-dry"); td["admin-dry"].Err == nil {
		t.Fatal("validate-only created the topic")
	}

	rc, err := adm.DescribeTopicConfigs(ctx, "admin-a")
	if err != nil {
		t.Fatal(err)
	}
	cfgs := map[string]kadm.Config{}
	for _, c := range rc[0].Configs {
		cfgs[c.Key] = c
	}
	if c := cfgs["retention.ms"]; c.MaybeValue() != "3600000" || c.Source.String() != "DYNAMIC_TOPIC_CONFIG" {
		t.Fatalf("retention.ms = %q from %v", c.MaybeValue(), c.Source)
	}
	if c := cfgs["segment.bytes"]; c.MaybeValue() != "134217728" || c.Source.String() != "DEFAULT_CONFIG" {
		t.Fatalf("segment.bytes = %q from %v", c.MaybeValue(), c.Source)
	}
	if c := cfgs["cleanup.policy"]; c.MaybeValue() != "compact" {
		t.Fatalf("cleanup.policy = %q", c.MaybeValue())
	}

	alter, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "segment.bytes", Value: strp("1048576")}, {Op: kadm.DeleteConfig, Name: "retention.ms"}}, "admin-a")
	if err != nil || alter[0].Err != nil {
		t.Fatalf("alter: %v %v", err, alter[0].Err)
	}
	rc, _ = adm.DescribeTopicConfigs(ctx, "admin-a")
	for _, c := range rc[0].Configs {
		if c.Key == "segment.bytes" && c.MaybeValue() != "1048576" {
			t.Fatalf("segment.bytes after alter = %q", c.MaybeValue())
		}
		if c.Key == "retention.ms" && c.MaybeValue() != "604800000" {
			t.Fatalf("retention.ms after delete = %q", c.MaybeValue())
		}
	}
	if _, err := adm.CreatePartitions(ctx, 2, "admin-a"); err != nil {
		t.Fatal(err)
	}
	td, _ := adm.ListTopics(ctx, "admin-a")
	if got := len(td["admin-a"].Partitions); got != 5 {
		t.Fatalf("partitions after adding 2: %d", got)
	}

	// Configs survive a restart.
	n.Restart()
	adm2 := kadm.NewClient(mustFranz(t, kgo.SeedBrokers(n.Addr())))
	defer adm2.Close()
	rc, err = adm2.DescribeTopicConfigs(ctx, "admin-a")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range rc[0].Configs {
		if c.Key == "segment.bytes" {
			found = c.MaybeValue() == "1048576"
		}
	}
	if !found {
		t.Fatal("altered config lost over restart")
	}

	// sarama's admin sees the same world.
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	sadm, err := sarama.NewClusterAdmin([]string{n.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sadm.Close()
	topics, err := sadm.ListTopics()
	if err != nil || topics["admin-a"].NumPartitions != 5 {
		t.Fatalf("sarama list: %v %+v", err, topics["admin-a"])
	}
	if err := sadm.DeleteTopic("admin-a"); err != nil {
		t.Fatal(err)
	}
	if td, _ := adm2.ListTopics(ctx, "admin-a"); td["admin-a"].Err == nil {
		t.Fatal("topic still listed after delete")
	}
}

func strp(s string) *string { return &s }

var (
	kerrInvalidConfig      = kerr.InvalidConfig
	kerrInvalidTopic       = kerr.InvalidTopicException
	kerrInvalidReplication = kerr.InvalidReplicationFactor
	kerrTopicExists        = kerr.TopicAlreadyExists
)
