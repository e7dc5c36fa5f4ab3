package server_test

// Interoperability with clients from other ecosystems: librdkafka (kcat) and
// kafkajs. `make interop` installs them (Debian kcat, npm kafkajs) and sets
// WEIR_INTEROP=1, which turns a missing tool into a failure instead of a skip.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/server/servertest"
)

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("WEIR_INTEROP") != "" {
			t.Fatalf("%s is not installed (run make interop)", name)
		}
		t.Skipf("%s not installed; run make interop", name)
	}
	return p
}

func runTool(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, errb.String())
	}
	return out.String()
}

func TestInteropKcat(t *testing.T) {
	kcat := requireTool(t, "kcat")
	n := servertest.Start(t, nil)
	var lines strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&lines, "key%d:value-%d\n", i, i)
	}
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		topic := "kcat-" + codec
		runTool(t, lines.String(), kcat, "-P", "-b", n.Addr(), "-t", topic, "-z", codec, "-K:", "-H", "src=kcat",
			"-X", "enable.idempotence=true", "-X", "topic.acks=all")
		out := runTool(t, "", kcat, "-C", "-b", n.Addr(), "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%o %k=%s %h\n")
		got := strings.Split(strings.TrimSpace(out), "\n")
		if len(got) != 2000 {
			t.Fatalf("%s: read %d records", codec, len(got))
		}
		for i, l := range got {
			if want := fmt.Sprintf("%d key%d=value-%d src=kcat", i, i, i); l != want {
				t.Fatalf("%s: line %d = %q, want %q", codec, i, l, want)
			}
		}
		// Relative and timestamp offsets.
		if out := runTool(t, "", kcat, "-C", "-b", n.Addr(), "-t", topic, "-o", "-3", "-e", "-q", "-f", "%o\n"); out != "1997\n1998\n1999\n" {
			t.Fatalf("%s: last three offsets %q", codec, out)
		}
	}
	md := runTool(t, "", kcat, "-L", "-J", "-b", n.Addr())
	var meta struct {
		Brokers []struct{ ID int32 }     `json:"brokers"`
		Topics  []struct{ Topic string } `json:"topics"`
	}
	err := json.Unmarshal([]byte(md), &meta)
	userTopics := 0
	for _, t := range meta.Topics {
		if !strings.HasPrefix(t.Topic, "__") {
			userTopics++
		}
	}
	if err != nil || len(meta.Brokers) != 1 || userTopics != 5 {
		t.Fatalf("kcat -L: %v %+v", err, meta)
	}
}

func TestInteropKafkaJS(t *testing.T) {
	node := requireTool(t, "node")
	dir, err := filepath.Abs("../../test/interop")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs")); err != nil {
		if os.Getenv("WEIR_INTEROP") != "" {
			t.Fatal("kafkajs is not installed in test/interop (run make interop)")
		}
		t.Skip("kafkajs not installed; run make interop")
	}
	n := servertest.Start(t, nil)
	out := runTool(t, "", node, filepath.Join(dir, "kafkajs.js"), n.Addr(), "kjs")
	var res struct{ Partitions, Total int }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Partitions != 3 || res.Total != 1000 {
		t.Fatalf("kafkajs: %q (%v)", out, err)
	}
	// Read back what kafkajs wrote with another client.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := mustFranz(t, kgo.SeedBrokers(n.Addr()), kgo.ConsumeTopics("kjs"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	seen := map[string]bool{}
	for len(seen) < 1000 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			k := string(r.Key)
			if string(r.Value) != "v"+k[1:] || len(r.Headers) != 1 || string(r.Headers[0].Value) != k[1:] {
				t.Fatalf("record %s = %s %v", k, r.Value, r.Headers)
			}
			seen[k] = true
		})
	}
}

// kcat's balanced consumer (librdkafka's KafkaConsumer) reads a topic in a
// group, commits as it goes and on exit; a second run resumes from the
// commits. kadm sees the commits.
func TestInteropKcatGroup(t *testing.T) {
	kcat := requireTool(t, "kcat")
	n := servertest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const topic, group, first = "kcat-group", "kcat-readers", 3000
	adm := kadm.NewClient(mustFranz(t, kgo.SeedBrokers(n.Addr())))
	defer adm.Close()
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	produce := func(from, to int) {
		t.Helper()
		p := mustFranz(t, kgo.SeedBrokers(n.Addr()), kgo.DefaultProduceTopic(topic))
		defer p.Close()
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))})
		}
		if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consume := func(args ...string) map[int]bool {
		t.Helper()
		args = append([]string{"-b", n.Addr(), "-G", group, "-X", "auto.offset.reset=earliest", "-q", "-f", "%s\n"}, args...)
		out := runTool(t, "", kcat, append(args, topic)...)
		got := map[int]bool{}
		for _, l := range strings.Fields(out) {
			var i int
			if _, err := fmt.Sscan(l, &i); err != nil || got[i] {
				t.Fatalf("kcat read %q (twice: %v)", l, got[i])
			}
			got[i] = true
		}
		return got
	}
	committedSum := func() int64 {
		t.Helper()
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Err != nil {
				t.Fatalf("partition %d: %v", o.Partition, o.Err)
			}
			sum += o.At
		})
		return sum
	}

	produce(0, first)
	// -e: exit once every assigned partition is read to its end.
	if got := consume("-e"); len(got) != first {
		t.Fatalf("kcat -G -e read %d records, want %d", len(got), first)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(e kadm.ListedOffset) {
		if o, ok := offs.Lookup(topic, e.Partition); !ok || o.Err != nil || o.At != e.Offset {
			t.Errorf("partition %d: committed %+v, end %d", e.Partition, o, e.Offset)
		}
	})

	// -c: the group resumes where it committed and stops after 200.
	produce(first, first+500)
	got := consume("-c", "200")
	if len(got) != 200 {
		t.Fatalf("kcat -G -c 200 read %d records", len(got))
	}
	for i := range got {
		if i < first {
			t.Fatalf("the second run re-read record %d, committed by the first", i)
		}
	}
	if sum := committedSum(); sum != first+200 {
		t.Fatalf("committed offsets sum to %d after the second run, want %d", sum, first+200)
	}
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if g := described[group]; g.State != "Empty" || g.ProtocolType != "consumer" {
		t.Fatalf("group after kcat left: state %q protocol type %q", g.State, g.ProtocolType)
	}
}

// A kafkajs transactional producer commits a transaction, aborts one and
// commits another; a read_committed reader sees exactly the committed
// records, and only the committed transaction's group offset is stored.
func TestInteropKafkaJSTransactions(t *testing.T) {
	node := requireTool(t, "node")
	dir, err := filepath.Abs("../../test/interop")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs")); err != nil {
		if os.Getenv("WEIR_INTEROP") != "" {
			t.Fatal("kafkajs is not installed in test/interop (run make interop)")
		}
		t.Skip("kafkajs not installed; run make interop")
	}
	n := servertest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const topic, offsetsTopic, group = "kjs-txn", "kjs-src", "kjs-txn-group"
	adm := kadm.NewClient(mustFranz(t, kgo.SeedBrokers(n.Addr())))
	defer adm.Close()
	for _, tp := range []string{topic, offsetsTopic} {
		if _, err := adm.CreateTopic(ctx, 3, 1, nil, tp); err != nil {
			t.Fatal(err)
		}
	}
	out := runTool(t, "", node, filepath.Join(dir, "kafkajs-txn.js"), n.Addr(), topic, offsetsTopic, group)
	var res struct{ Committed, Aborted []string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Committed) != 150 || len(res.Aborted) != 100 {
		t.Fatalf("kafkajs: %q (%v)", out, err)
	}

	// A plain record closes each partition: a read_committed reader gets
	// it only after every transaction before it is decided.
	p := mustFranz(t, kgo.SeedBrokers(n.Addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for part := range int32(3) {
		if err := p.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: part, Value: []byte("end")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	read := func(level kgo.IsolationLevel) map[string]int {
		t.Helper()
		c := mustFranz(t, kgo.SeedBrokers(n.Addr()), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(level),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		defer c.Close()
		got := map[string]int{}
		for got["end"] < 3 {
			fs := c.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				t.Fatal(err)
			}
			fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)]++ })
		}
		delete(got, "end")
		return got
	}
	committed := read(kgo.ReadCommitted())
	for _, v := range res.Committed {
		if committed[v] != 1 {
			t.Errorf("read_committed saw committed record %s %d times", v, committed[v])
		}
	}
	if len(committed) != len(res.Committed) {
		for _, v := range res.Aborted {
			if committed[v] > 0 {
				t.Errorf("read_committed saw aborted record %s", v)
			}
		}
		t.Fatalf("read_committed saw %d distinct records, want %d", len(committed), len(res.Committed))
	}
	// The aborted records are in the log; only the isolation level hid them.
	if all := read(kgo.ReadUncommitted()); len(all) != len(res.Committed)+len(res.Aborted) {
		t.Fatalf("read_uncommitted saw %d distinct records, want %d", len(all), len(res.Committed)+len(res.Aborted))
	}

	offs, err := adm.FetchOffsets(kadm.RequireStable(ctx), group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(offsetsTopic, 0); !ok || o.Err != nil || o.At != 42 {
		t.Errorf("committed transaction's offset: %+v, want 42", o)
	}
	if o, ok := offs.Lookup(offsetsTopic, 1); ok && o.At >= 0 {
		t.Errorf("aborted transaction's offset was stored: %+v", o)
	}
}
