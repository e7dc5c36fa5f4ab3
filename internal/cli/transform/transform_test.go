package transform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/cli/clitest"
	"github.com/weir-dev/weir/internal/config"
	"github.com/weir-dev/weir/internal/server/servertest"
	"github.com/weir-dev/weir/internal/transform/transformtest"
)

func startNode(t *testing.T) *servertest.Node {
	return servertest.Start(t, func(c *config.Config) {
		c.TransformInterval = 50 * time.Millisecond
		c.DefaultPartitions = 3
	})
}

func client(t *testing.T, n *servertest.Node, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.Addr())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produce(t *testing.T, cl *kgo.Client, topic string, from, to int, value func(i int) string) {
	t.Helper()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d", i%7)), Value: []byte(value(i))})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// consumeN reads topic from the start until it has n records, and fails if
// it then finds more within a short final poll.
func consumeN(t *testing.T, n *servertest.Node, topic string, want int) []*kgo.Record {
	t.Helper()
	cl := client(t, n, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []*kgo.Record
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: read %d of %d records", topic, len(got), want)
		}
		got = append(got, fs.Records()...)
	}
	if len(got) != want {
		t.Fatalf("%s: %d records, want %d", topic, len(got), want)
	}
	return got
}

// checkPartition fails unless a keyed output record sits in the partition
// a Kafka client would have put it in (murmur2 of the key, as kgo and the
// Java client place keys), among n.
func checkPartition(t *testing.T, r *kgo.Record, n int) {
	t.Helper()
	want := kgo.StickyKeyPartitioner(nil).ForTopic(r.Topic).Partition(&kgo.Record{Key: r.Key}, n)
	if r.Key == nil || int(r.Partition) != want {
		t.Fatalf("%s: key %q in partition %d, a client would use %d", r.Topic, r.Key, r.Partition, want)
	}
}

func TestDeployedMapSurvivesRestart(t *testing.T) {
	node := startNode(t)
	module := transformtest.BuildFile(t, "examples/uppercase")
	brokers := "--brokers=" + node.Addr()
	adm := kadm.NewClient(client(t, node))
	if _, err := adm.CreateTopic(context.Background(), 3, 1, nil, "words"); err != nil {
		t.Fatal(err)
	}
	cl := client(t, node)
	produce(t, cl, "words", 0, 300, func(i int) string { return fmt.Sprintf("word-%d", i) })

	out := clitest.MustRun(t, "", "transform", "deploy", "upper", brokers, "--module", module,
		"--input", "words", "--output", "WORDS", "--from", "beginning")
	if !strings.Contains(out.Stdout, "upper@0.0.0-") {
		t.Fatalf("deploy printed %q", out.Stdout)
	}
	// A filter keeping every (keyed) record: outputs the host takes from
	// the input instead of the module's copies.
	clitest.MustRun(t, "", "transform", "deploy", "keep", brokers, "--module", transformtest.BuildFile(t, "internal/transform/testdata/prefix"),
		"--input", "words", "--output", "kept", "--from", "beginning", "--param", "prefix=word")
	produce(t, cl, "words", 300, 600, func(i int) string { return fmt.Sprintf("word-%d", i) })
	consumeN(t, node, "WORDS", 600)
	for _, r := range consumeN(t, node, "kept", 600) {
		if !strings.HasPrefix(string(r.Value), "word-") {
			t.Fatalf("kept %s=%s", r.Key, r.Value)
		}
		checkPartition(t, r, 3)
	}

	node.Restart()
	cl = client(t, node)
	produce(t, cl, "words", 600, 900, func(i int) string { return fmt.Sprintf("word-%d", i) })
	got := consumeN(t, node, "WORDS", 900)
	seen := map[string]int{}
	for _, r := range got {
		checkPartition(t, r, 3)
		seen[string(r.Value)]++
		if !strings.HasPrefix(string(r.Value), "WORD-") || !strings.HasPrefix(string(r.Key), "k") {
			t.Fatalf("output %s=%s", r.Key, r.Value)
		}
	}
	for i := range 900 {
		if c := seen[fmt.Sprintf("WORD-%d", i)]; c != 1 {
			t.Fatalf("WORD-%d appears %d times", i, c)
		}
	}

	// describe and list report every partition caught up.
	deadline := time.Now().Add(time.Minute)
	for {
		var d struct {
			Module     string `json:"module"`
			Partitions []struct {
				Partition int32  `json:"partition"`
				State     string `json:"state"`
				Lag       int64  `json:"lag"`
				RecordsIn int64  `json:"records_in"`
			} `json:"partitions"`
		}
		res := clitest.MustRun(t, "", "transform", "describe", "upper", brokers, "--format", "json")
		if err := json.Unmarshal([]byte(res.Stdout), &d); err != nil {
			t.Fatal(err)
		}
		caught := len(d.Partitions) == 3
		for _, p := range d.Partitions {
			caught = caught && p.State == "running" && p.Lag == 0
		}
		if caught {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("describe never showed 3 caught-up partitions: %s", res.Stdout)
		}
		time.Sleep(50 * time.Millisecond) // status is reported every transform-interval
	}
	list := clitest.MustRun(t, "", "transform", "list", brokers)
	if !strings.Contains(list.Stdout, "upper") || !strings.Contains(list.Stdout, "running") {
		t.Fatalf("list: %s", list.Stdout)
	}
}

// A transform built with Redpanda's SDK deploys and runs like ours.
func TestDeployRedpandaModule(t *testing.T) {
	node := startNode(t)
	brokers := "--brokers=" + node.Addr()
	if _, err := kadm.NewClient(client(t, node)).CreateTopic(context.Background(), 1, 1, nil, "rp-in"); err != nil {
		t.Fatal(err)
	}
	module := transformtest.BuildCommand(t, "internal/transform/testdata/redpanda", "uppercase")
	out := clitest.MustRun(t, "", "transform", "deploy", "rp-upper", brokers, "--module", module, "--input", "rp-in", "--output", "rp-out")
	if !strings.Contains(out.Stdout, "flat-map") {
		t.Fatalf("deploy: %s", out.Stdout)
	}
	produce(t, client(t, node), "rp-in", 0, 50, func(i int) string { return fmt.Sprintf("value-%d", i) })
	seen := map[string]bool{}
	for _, r := range consumeN(t, node, "rp-out", 50) {
		seen[string(r.Value)] = true
	}
	for i := range 50 {
		if !seen[fmt.Sprintf("VALUE-%d", i)] {
			t.Fatalf("VALUE-%d missing", i)
		}
	}
}

func TestKindsAndErrorPolicies(t *testing.T) {
	node := startNode(t)
	brokers := "--brokers=" + node.Addr()
	cl := client(t, node)
	adm := kadm.NewClient(cl)
	for _, topic := range []string{"events", "arrays", "clicks"} {
		if _, err := adm.CreateTopic(context.Background(), 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	// filter with parameters
	clitest.MustRun(t, "", "transform", "deploy", "eu-only", brokers, "--module", transformtest.BuildFile(t, "examples/json-filter"),
		"--input", "events", "--output", "events-eu", "--param", "field=region", "--param", "equals=eu")
	// flat-map, with a record that is not an array dead-lettered
	clitest.MustRun(t, "", "transform", "deploy", "split", brokers, "--module", transformtest.BuildFile(t, "examples/split-array"),
		"--input", "arrays", "--output", "items", "--on-error", "dead-letter")
	// aggregate
	clitest.MustRun(t, "", "transform", "deploy", "count", brokers, "--module", transformtest.BuildFile(t, "examples/key-counter"),
		"--input", "clicks", "--output", "click-counts")

	produce(t, cl, "events", 0, 40, func(i int) string {
		if i%4 == 0 {
			return fmt.Sprintf(`{"region":"eu","i":%d}`, i)
		}
		return fmt.Sprintf(`{"region":"us","i":%d}`, i)
	})
	produce(t, cl, "arrays", 0, 10, func(i int) string {
		if i == 5 {
			return "not an array"
		}
		return fmt.Sprintf("[%d,%d]", i, i)
	})
	var clicks []*kgo.Record
	for i := range 30 {
		clicks = append(clicks, &kgo.Record{Topic: "clicks", Key: []byte(fmt.Sprintf("page%d", i%3)), Value: []byte("x")})
	}
	if err := cl.ProduceSync(context.Background(), clicks...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	for _, r := range consumeN(t, node, "events-eu", 10) {
		if !strings.Contains(string(r.Value), `"eu"`) {
			t.Fatalf("filter let through %s", r.Value)
		}
	}
	items := map[string]int{}
	for _, r := range consumeN(t, node, "items", 18) { // spread over the output's partitions by key
		items[string(r.Value)]++
	}
	for i := range 10 {
		if want := 2 * min(1, abs(i-5)); items[fmt.Sprint(i)] != want {
			t.Fatalf("item %d appears %d times, want %d: %v", i, items[fmt.Sprint(i)], want, items)
		}
	}
	dead := consumeN(t, node, "split.dead-letter", 1)
	if string(dead[0].Value) != "not an array" || !hasHeader(dead[0], "weir.error") {
		t.Fatalf("dead letter %s %v", dead[0].Value, dead[0].Headers)
	}
	counts := consumeN(t, node, "click-counts", 30)
	last := map[string]string{} // per key, in order within the key's partition
	for _, r := range counts {
		last[string(r.Key)] = string(r.Value)
	}
	if last["page0"] != "10" || last["page1"] != "10" || last["page2"] != "10" {
		t.Fatalf("counts %v", last)
	}

	// The aggregate keeps counting across a restart: its state is saved
	// with its progress.
	node.Restart()
	cl = client(t, node)
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "clicks", Key: []byte("page0"), Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	counts = consumeN(t, node, "click-counts", 31)
	for _, r := range counts {
		last[string(r.Key)] = string(r.Value)
	}
	if last["page0"] != "11" {
		t.Fatalf("after restart page0 counts %s", last["page0"])
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func hasHeader(r *kgo.Record, key string) bool {
	for _, h := range r.Headers {
		if h.Key == key {
			return true
		}
	}
	return false
}

func TestEdgeTransformsAndModuleHub(t *testing.T) {
	node := startNode(t)
	brokers := "--brokers=" + node.Addr()
	upper := transformtest.BuildFile(t, "examples/uppercase")
	filter := transformtest.BuildFile(t, "examples/json-filter")
	dir := t.TempDir()

	// Producer side: the module runs in the CLI before records are sent.
	clitest.MustRun(t, "alpha\nbeta\n", "produce", "edge", brokers, "--transform", upper)
	if got := clitest.MustRun(t, "", "consume", "edge", brokers).Stdout; got != "ALPHA\nBETA\n" {
		t.Fatalf("produced through the module: %q", got)
	}
	// Consumer side: the module shapes what is printed.
	clitest.MustRun(t, "{\"r\":\"eu\",\"n\":1}\n{\"r\":\"us\",\"n\":2}\n{\"r\":\"eu\",\"n\":3}\n", "produce", "regions", brokers)
	got := clitest.MustRun(t, "", "consume", "regions", brokers, "--transform", filter, "--param", "field=r", "--param", "equals=eu", "--format", "%o %v\\n").Stdout
	if got != "0 {\"r\":\"eu\",\"n\":1}\n2 {\"r\":\"eu\",\"n\":3}\n" {
		t.Fatalf("consumed through the filter: %q", got)
	}

	// The hub: publish, republish, conflicting bytes, list, describe, pull.
	clitest.MustRun(t, "", "module", "publish", upper, brokers, "--name", "upper", "--version", "1.0.0", "--description", "upper-cases values")
	clitest.MustRun(t, "", "module", "publish", upper, brokers, "--name", "upper", "--version", "1.0.0")
	if msg := clitest.Fails(t, "", "module", "publish", filter, brokers, "--name", "upper", "--version", "1.0.0"); !strings.Contains(msg, "already published") {
		t.Fatalf("conflicting publish: %s", msg)
	}
	clitest.MustRun(t, "", "module", "publish", filter, brokers, "--name", "upper", "--version", "1.1.0")
	bogus := dir + "/bogus.wasm"
	if err := os.WriteFile(bogus, []byte("not wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg := clitest.Fails(t, "", "module", "publish", bogus, brokers, "--name", "bogus", "--version", "1.0.0"); !strings.Contains(msg, "invalid transform module") {
		t.Fatalf("bogus publish: %s", msg)
	}
	list := clitest.MustRun(t, "", "module", "list", brokers).Stdout
	if !strings.Contains(list, "upper@1.0.0") || !strings.Contains(list, "upper@1.1.0") || strings.Contains(list, "bogus") {
		t.Fatalf("module list:\n%s", list)
	}
	if d := clitest.MustRun(t, "", "module", "describe", "upper@1.0.0", brokers).Stdout; !strings.Contains(d, "map") || !strings.Contains(d, "upper-cases values") {
		t.Fatalf("describe:\n%s", d)
	}
	if d := clitest.MustRun(t, "", "module", "describe", "upper", brokers).Stdout; !strings.Contains(d, "upper@1.1.0") || !strings.Contains(d, "filter") {
		t.Fatalf("describe newest:\n%s", d)
	}
	pulled := dir + "/pulled.wasm"
	clitest.MustRun(t, "", "module", "pull", "upper@1.0.0", brokers, "-o", pulled)
	a, _ := os.ReadFile(upper)
	b, _ := os.ReadFile(pulled)
	if !bytes.Equal(a, b) {
		t.Fatal("pulled module differs from the published one")
	}

	// Deploy by reference; the version in use cannot be deleted.
	clitest.MustRun(t, "", "transform", "deploy", "shout", brokers, "--module-ref", "upper@1.0.0", "--input", "edge", "--output", "edge-loud")
	if msg := clitest.Fails(t, "", "module", "delete", "upper@1.0.0", brokers); !strings.Contains(msg, "shout") {
		t.Fatalf("delete of a version in use: %s", msg)
	}
	clitest.MustRun(t, "", "transform", "delete", "shout", brokers)
	clitest.MustRun(t, "", "module", "delete", "upper@1.0.0", brokers)
	if list := clitest.MustRun(t, "", "module", "list", brokers).Stdout; strings.Contains(list, "upper@1.0.0") {
		t.Fatalf("deleted version still listed:\n%s", list)
	}

	// module test runs a module on sample records locally.
	sample := dir + "/sample.jsonl"
	if err := os.WriteFile(sample, []byte("{\"key\":\"a\",\"value\":\"hi\",\"headers\":{\"h\":\"1\"}}\nplain line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := clitest.MustRun(t, "", "module", "test", upper, "--input", sample).Stdout
	if out != `{"input":0,"output":0,"key":"a","value":"HI","headers":{"h":"1"}}`+"\n"+`{"input":1,"output":0,"value":"PLAIN LINE"}`+"\n" {
		t.Fatalf("module test:\n%s", out)
	}
	// module init scaffolds a project that builds into a module.
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"filter", "aggregate"} {
		proj := dir + "/mine-" + kind
		clitest.MustRun(t, "", "module", "init", proj, "--kind", kind, "--sdk-dir", filepath.Dir(strings.TrimSpace(string(root))))
		build := exec.Command("go", "build", "-mod=mod", "-buildmode=c-shared", "-o", "m.wasm", ".")
		build.Dir = proj
		build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=")
		if msg, err := build.CombinedOutput(); err != nil {
			t.Fatalf("scaffolded %s module does not build: %v\n%s", kind, err, msg)
		}
		out := clitest.MustRun(t, "", "module", "test", proj+"/m.wasm", "--input", proj+"/sample.jsonl").Stdout
		if !strings.Contains(out, `"key":"a"`) {
			t.Fatalf("scaffolded %s module emitted:\n%s", kind, out)
		}
	}
}

func TestLazyViews(t *testing.T) {
	node := startNode(t)
	brokers := "--brokers=" + node.Addr()
	cl := client(t, node)
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(context.Background(), 2, 1, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	want := map[int32][]int64{} // partition -> offsets of eu orders
	for i := range 60 {
		region := "us"
		if i%3 == 0 {
			region = "eu"
		}
		recs = append(recs, &kgo.Record{Topic: "orders", Partition: int32(i % 2), Value: []byte(fmt.Sprintf(`{"region":%q,"n":%d}`, region, i))})
	}
	pcl := client(t, node, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	res := pcl.ProduceSync(context.Background(), recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if strings.Contains(string(r.Record.Value), `"eu"`) {
			want[r.Record.Partition] = append(want[r.Record.Partition], r.Record.Offset)
		}
	}

	clitest.MustRun(t, "", "view", "create", "eu-orders", brokers, "--from", "orders",
		"--module", transformtest.BuildFile(t, "examples/json-filter"), "--param", "field=region", "--param", "equals=eu")
	clitest.MustRun(t, "", "view", "create", "loud-orders", brokers, "--from", "orders", "--module", transformtest.BuildFile(t, "examples/uppercase"))
	if msg := clitest.Fails(t, "", "view", "create", "split", brokers, "--from", "orders", "--module", transformtest.BuildFile(t, "examples/split-array")); !strings.Contains(msg, "flat-map") {
		t.Fatalf("flat-map view: %s", msg)
	}
	// A filter keeping every record: the source's batches as they are.
	clitest.MustRun(t, "", "view", "create", "all-orders", brokers, "--from", "orders",
		"--module", transformtest.BuildFile(t, "internal/transform/testdata/prefix"), "--param", "prefix={")
	waitTopic(t, adm, "eu-orders", true)
	waitTopic(t, adm, "loud-orders", true)
	waitTopic(t, adm, "all-orders", true)
	all := map[string]string{}
	for _, r := range res {
		all[fmt.Sprint(r.Record.Partition, "@", r.Record.Offset)] = string(r.Record.Value)
	}
	for _, r := range consumeN(t, node, "all-orders", 60) {
		if want := all[fmt.Sprint(r.Partition, "@", r.Offset)]; string(r.Value) != want {
			t.Fatalf("all-orders %d@%d = %s, the source has %s", r.Partition, r.Offset, r.Value, want)
		}
		// Still compressed as produced (franz-go's default, snappy): a
		// rebuilt batch would be uncompressed.
		if c := r.Attrs.CompressionType(); c != 2 {
			t.Fatalf("all-orders %d@%d: compression %d, not the source batch's", r.Partition, r.Offset, c)
		}
	}

	// franz-go reads the view like a topic: only eu orders, at their
	// source offsets.
	got := map[int32][]int64{}
	for _, r := range consumeN(t, node, "eu-orders", 20) {
		if !strings.Contains(string(r.Value), `"eu"`) {
			t.Fatalf("view returned %s", r.Value)
		}
		got[r.Partition] = append(got[r.Partition], r.Offset)
	}
	for p := range want {
		if fmt.Sprint(got[p]) != fmt.Sprint(want[p]) {
			t.Fatalf("partition %d offsets %v, want %v", p, got[p], want[p])
		}
	}
	for _, r := range consumeN(t, node, "loud-orders", 60) {
		if !strings.Contains(string(r.Value), `"REGION"`) {
			t.Fatalf("map view returned %s", r.Value)
		}
	}
	// So does sarama (another client family).
	sc := saramaConsumer(t, node.Addr())
	pc, err := sc.ConsumePartition("eu-orders", 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range want[0] {
		select {
		case m := <-pc.Messages():
			if m.Offset != off || !strings.Contains(string(m.Value), `"eu"`) {
				t.Fatalf("sarama read %d %s, want offset %d", m.Offset, m.Value, off)
			}
		case err := <-pc.Errors():
			t.Fatal(err)
		case <-time.After(time.Minute):
			t.Fatal("sarama read nothing")
		}
	}
	// Closed now: sarama asks for topics with auto-creation allowed, and
	// would create a real topic of the view's name once it is deleted.
	pc.Close()
	sc.Close()

	// Read-only: producing to a view fails with a clear error.
	err = cl.ProduceSync(context.Background(), &kgo.Record{Topic: "eu-orders", Value: []byte("x")}).FirstErr()
	if err == nil || !strings.Contains(err.Error(), "INVALID_TOPIC") {
		t.Fatalf("produce to a view: %v", err)
	}
	if list := clitest.MustRun(t, "", "view", "list", brokers).Stdout; !strings.Contains(list, "eu-orders") || !strings.Contains(list, "loud-orders") {
		t.Fatalf("view list:\n%s", list)
	}
	clitest.MustRun(t, "", "view", "delete", "eu-orders", brokers)
	if list := clitest.MustRun(t, "", "view", "list", brokers).Stdout; strings.Contains(list, "eu-orders") {
		t.Fatalf("view list after delete:\n%s", list)
	}
	waitTopic(t, adm, "eu-orders", false)
}

// waitTopic waits until Metadata lists (or stops listing) a topic: views
// appear once the node's transform engine has read the catalog.
func waitTopic(t *testing.T, adm *kadm.Client, topic string, present bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		md, err := adm.Metadata(context.Background())
		if err == nil {
			_, ok := md.Topics[topic]
			if ok == present {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s present=%v never seen: %v", topic, present, err)
		}
		time.Sleep(20 * time.Millisecond) // the engine re-reads the catalog every transform-interval
	}
}

func saramaConsumer(t *testing.T, addr string) sarama.Consumer {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	c, err := sarama.NewConsumer([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDeployedFilterThroughput measures (it asserts nothing about speed):
// records per second of plain acks=all produce to a topic, and of the same
// produce through a deployed filter, counted until the filter's output
// holds every record; the better of two rounds each. Run by make
// bench-transforms.
func TestDeployedFilterThroughput(t *testing.T) {
	if os.Getenv("WEIR_TRANSFORM_BENCH") == "" {
		t.Skip("a measurement: make bench-transforms")
	}
	n := 2_000_000 // about half a second a phase here: shorter runs are mostly noise
	if v, err := strconv.Atoi(os.Getenv("WEIR_TRANSFORM_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	size := 200
	if v, err := strconv.Atoi(os.Getenv("WEIR_TRANSFORM_BENCH_BYTES")); err == nil && v > 5 {
		size = v
	}
	value := []byte("keep-" + strings.Repeat("x", size-5)) // all kept
	// Partitions of each topic: one runner per input partition.
	partitions := 1
	if v, err := strconv.Atoi(os.Getenv("WEIR_TRANSFORM_BENCH_PARTITIONS")); err == nil && v > 0 {
		partitions = v
	}
	// Nodes: 1, or a cluster (in this process) whose topics have a replica
	// on each node.
	nodes := 1
	if v, err := strconv.Atoi(os.Getenv("WEIR_TRANSFORM_BENCH_NODES")); err == nil && v > 0 {
		nodes = v
	}
	budgets := []string{"5s", "0"}
	if b := os.Getenv("WEIR_TRANSFORM_BENCH_BUDGET"); b != "" {
		budgets = []string{b}
	}
	for _, budget := range budgets {
		edit := func(c *config.Config) {
			c.TransformInterval = 50 * time.Millisecond
			d, _ := time.ParseDuration(budget)
			c.TransformBudget = d
		}
		var all []*servertest.Node
		if nodes == 1 {
			all = []*servertest.Node{servertest.Start(t, edit)}
		} else {
			all = servertest.StartCluster(t, nodes, func(_ int, c *config.Config) { edit(c) })
			servertest.WaitReady(t, all...)
		}
		node := all[0]
		var addrs []string
		for _, nd := range all {
			addrs = append(addrs, nd.Addr())
		}
		brokers := "--brokers=" + strings.Join(addrs, ",")
		adm := kadm.NewClient(client(t, node))
		for _, topic := range []string{"plain", "in", "out"} {
			resp, err := adm.CreateTopic(context.Background(), int32(partitions), int16(nodes), nil, topic)
			if err == nil {
				err = resp.Err
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		module := transformtest.BuildFile(t, "internal/transform/testdata/prefix")
		if m := os.Getenv("WEIR_TRANSFORM_BENCH_MODULE"); m != "" {
			module = filepath.Join("..", "..", "..", m) // from the repository's root
		}
		clitest.MustRun(t, "", "transform", "deploy", "keep", brokers, "--module", module,
			"--input", "in", "--output", "out", "--param", "prefix=keep")
		waitRunning(t, brokers, "keep")
		rate := func(topic string, until func()) float64 {
			cl := client(t, node, kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(100_000))
			start := time.Now()
			for range n {
				cl.Produce(context.Background(), &kgo.Record{Topic: topic, Value: value}, func(_ *kgo.Record, err error) {
					if err != nil {
						t.Error(err)
					}
				})
			}
			if err := cl.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			until()
			return float64(n) / time.Since(start).Seconds()
		}
		// Two rounds, plain and through taking turns, and the better
		// rate of each: this VM's speed drifts from second to second.
		var plain, through float64
		for round := 1; round <= 2; round++ {
			profile := func(phase string) {
				// CPU profiles of both phases of the first round.
				if path := os.Getenv("WEIR_TRANSFORM_BENCH_PROFILE"); path != "" && round == 1 {
					f, err := os.Create(path + "." + budget + "." + phase)
					if err != nil {
						t.Fatal(err)
					}
					if err := pprof.StartCPUProfile(f); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { f.Close() })
				}
			}
			profile("plain")
			plain = max(plain, rate("plain", func() {}))
			pprof.StopCPUProfile()
			profile("through")
			through = max(through, rate("in", func() { waitEnd(t, adm, "out", int64(round*n)) }))
			pprof.StopCPUProfile()
		}
		t.Logf("%d-byte records, %d partitions, %d nodes, budget %s: plain produce %.0f rec/s; through a deployed filter %.0f rec/s (%.2fx)",
			size, partitions, nodes, budget, plain, through, through/plain)
		for _, nd := range all {
			nd.Stop()
		}
	}
}

// TestViewFetchThroughput measures (it asserts nothing about speed)
// records per second read by a franz-go consumer from a topic and from
// lazy views of it: a filter keeping every record (its batches go out as
// stored), one keeping about half (rebuilt batches) and an uppercase map.
// Run by make bench-transforms.
func TestViewFetchThroughput(t *testing.T) {
	if os.Getenv("WEIR_TRANSFORM_BENCH") == "" {
		t.Skip("a measurement: make bench-transforms")
	}
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("WEIR_TRANSFORM_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	node := servertest.Start(t, func(c *config.Config) { c.TransformInterval = 50 * time.Millisecond })
	brokers := "--brokers=" + node.Addr()
	adm := kadm.NewClient(client(t, node))
	if _, err := adm.CreateTopic(context.Background(), 1, 1, nil, "src"); err != nil {
		t.Fatal(err)
	}
	cl := client(t, node, kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(100_000))
	tail := strings.Repeat("x", 190)
	for i := range n {
		v := "keep-" + tail
		if i%2 == 1 {
			v = "skip-" + tail
		}
		cl.Produce(context.Background(), &kgo.Record{Topic: "src", Value: []byte(v)}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	prefix := transformtest.BuildFile(t, "internal/transform/testdata/prefix")
	views := []struct{ name, module, param string }{
		{"all", prefix, "prefix="}, {"half", prefix, "prefix=keep"}, {"upper", transformtest.BuildFile(t, "examples/uppercase"), "prefix="},
	}
	for _, v := range views {
		clitest.MustRun(t, "", "view", "create", v.name, brokers, "--from", "src", "--module", v.module, "--param", v.param)
		waitTopic(t, adm, v.name, true)
	}
	read := func(topic string, want int) float64 {
		cl := client(t, node, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		for got := 0; got < want; {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%s: read %d of %d", topic, got, want)
			}
			got += fs.NumRecords()
		}
		return float64(want) / time.Since(start).Seconds()
	}
	plain := read("src", n)
	for _, v := range views {
		want := n
		if v.name == "half" {
			want = n / 2
		}
		// Rates in source records a second: a view reads them all.
		rate := read(v.name, want) * float64(n) / float64(want)
		t.Logf("view %s: %.0f source records/s; the topic itself %.0f (%.2fx)", v.name, rate, plain, rate/plain)
	}
}

func waitRunning(t *testing.T, brokers, name string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(clitest.MustRun(t, "", "transform", "describe", name, brokers).Stdout, "running") {
		if time.Now().After(deadline) {
			t.Fatalf("%s never ran", name)
		}
		time.Sleep(50 * time.Millisecond) // status is reported every transform-interval
	}
}

func waitEnd(t *testing.T, adm *kadm.Client, topic string, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		ends, err := adm.ListEndOffsets(context.Background(), topic)
		if err == nil && ends.Error() == nil {
			var sum int64
			ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
			if sum >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %d records", topic, n)
		}
		time.Sleep(5 * time.Millisecond) // polling the end offset while the transform works
	}
}

// describeJSON returns `transform describe NAME --format json`.
type describeOut struct {
	Paused     bool `json:"paused"`
	Partitions []struct {
		State      string `json:"state"`
		Errors     int64  `json:"errors"`
		LastError  string `json:"last_error"`
		RecordsOut int64  `json:"records_out"`
	} `json:"partitions"`
}

func describeJSON(t *testing.T, brokers, name string) describeOut {
	t.Helper()
	var d describeOut
	res := clitest.MustRun(t, "", "transform", "describe", name, brokers, "--format", "json")
	if err := json.Unmarshal([]byte(res.Stdout), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// waitDescribe polls describe until ok accepts it.
func waitDescribe(t *testing.T, brokers, name string, ok func(describeOut) bool) describeOut {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		d := describeJSON(t, brokers, name)
		if ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: describe never showed what was expected: %+v", name, d)
		}
		time.Sleep(50 * time.Millisecond) // status is reported every transform-interval
	}
}

// A module that loops forever, one that allocates without bound and one
// that traps are stopped, follow their error policies and show it in
// describe and logs, while another transform and plain topics go on.
func TestMisbehavingModules(t *testing.T) {
	node := servertest.Start(t, func(c *config.Config) {
		c.TransformInterval = 50 * time.Millisecond
		c.TransformBudget = 500 * time.Millisecond
		c.TransformMemoryMB = 48
	})
	brokers := "--brokers=" + node.Addr()
	adm := kadm.NewClient(client(t, node))
	for _, topic := range []string{"spin-in", "hog-in", "trap-in", "good-in", "nums"} {
		if _, err := adm.CreateTopic(context.Background(), 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	deploy := func(name, pkg, in, policy string) {
		clitest.MustRun(t, "", "transform", "deploy", name, brokers, "--module", transformtest.BuildFile(t, pkg),
			"--input", in, "--output", name+"-out", "--on-error", policy)
	}
	deploy("spin", "internal/transform/testdata/loop", "spin-in", "stop")
	deploy("hog", "internal/transform/testdata/hog", "hog-in", "skip")
	deploy("trap", "internal/transform/testdata/panics", "trap-in", "dead-letter")
	deploy("good", "examples/uppercase", "good-in", "stop")
	deploy("double", "internal/transform/testdata/doubler", "nums", "stop")

	cl := client(t, node)
	produce(t, cl, "spin-in", 0, 3, func(i int) string { return []string{"a", "loop", "b"}[i] })
	produce(t, cl, "hog-in", 0, 3, func(i int) string { return []string{"a", "hog", "b"}[i] })
	produce(t, cl, "trap-in", 0, 3, func(i int) string { return []string{"a", "panic", "b"}[i] })
	produce(t, cl, "good-in", 0, 100, func(i int) string { return fmt.Sprint("v", i) })
	produce(t, cl, "nums", 0, 4, func(i int) string { return []string{"1", "x", "20", "y"}[i] })

	// Unaffected: the good transform, a filter-map, and plain topics.
	if got := consumeN(t, node, "good-out", 100); !strings.HasPrefix(string(got[0].Value), "V") {
		t.Fatalf("good transform wrote %s", got[0].Value)
	}
	if got := consumeN(t, node, "double-out", 2); string(got[0].Value) != "2" || string(got[1].Value) != "40" {
		t.Fatalf("filter-map wrote %s %s", got[0].Value, got[1].Value)
	}
	// The loop is stopped by the budget and, with policy stop, fails.
	d := waitDescribe(t, brokers, "spin", func(d describeOut) bool { return len(d.Partitions) == 1 && d.Partitions[0].State == "failed" })
	if !strings.Contains(d.Partitions[0].LastError, "budget") {
		t.Fatalf("spin last error %q", d.Partitions[0].LastError)
	}
	if logs := clitest.MustRun(t, "", "transform", "logs", "spin", brokers).Stdout; !strings.Contains(logs, "budget") {
		t.Fatalf("spin logs:\n%s", logs)
	}
	// The hog hits the memory cap; with skip, its record is skipped and
	// its neighbours go through.
	if got := consumeN(t, node, "hog-out", 2); string(got[0].Value) != "a" || string(got[1].Value) != "b" {
		t.Fatalf("hog outputs %s %s", got[0].Value, got[1].Value)
	}
	waitDescribe(t, brokers, "hog", func(d describeOut) bool { return len(d.Partitions) == 1 && d.Partitions[0].Errors >= 1 })
	// The trap dead-letters the record it trapped on (its batch is run
	// again record by record) and carries on with a fresh instance.
	dead := consumeN(t, node, "trap.dead-letter", 1)
	if string(dead[0].Value) != "panic" || !hasHeader(dead[0], "weir.error") {
		t.Fatalf("dead letter %s %v", dead[0].Value, dead[0].Headers)
	}
	produce(t, cl, "trap-in", 3, 4, func(int) string { return "after" })
	if got := consumeN(t, node, "trap-out", 3); string(got[0].Value) != "a" || string(got[1].Value) != "b" || string(got[2].Value) != "after" {
		t.Fatalf("trap outputs %s %s %s", got[0].Value, got[1].Value, got[2].Value)
	}

	// Pause keeps progress; resume goes on from it.
	clitest.MustRun(t, "", "transform", "pause", "good", brokers)
	waitDescribe(t, brokers, "good", func(d describeOut) bool {
		return d.Paused && len(d.Partitions) == 1 && d.Partitions[0].State == "paused"
	})
	produce(t, cl, "good-in", 100, 150, func(i int) string { return fmt.Sprint("v", i) })
	clitest.MustRun(t, "", "transform", "resume", "good", brokers)
	got := consumeN(t, node, "good-out", 150)
	seen := map[string]int{}
	for _, r := range got {
		seen[string(r.Value)]++
	}
	for i := range 150 {
		if seen[fmt.Sprint("V", i)] != 1 {
			t.Fatalf("V%d appears %d times after pause and resume", i, seen[fmt.Sprint("V", i)])
		}
	}
}

// In a cluster a transform runs on its input partition's leader and
// follows it: after the leader stops, the new leader's node carries on
// from the committed progress, and no input record is left out.
func TestTransformFollowsLeaderInCluster(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, func(_ int, c *config.Config) { c.TransformInterval = 50 * time.Millisecond })
	var seeds []string
	for _, n := range nodes {
		seeds = append(seeds, n.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	newClient := func(opts ...kgo.Opt) *kgo.Client {
		var live []string
		for _, n := range nodes {
			if n.Running() {
				live = append(live, n.Addr())
			}
		}
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(live...), kgo.RetryTimeout(time.Minute), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	adm := kadm.NewClient(newClient())
	for {
		_, err := adm.CreateTopic(ctx, 1, 3, nil, "events")
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the cluster is still electing its controller
	}
	brokers := "--brokers=" + strings.Join(seeds, ",")
	clitest.MustRun(t, "", "transform", "deploy", "upper", brokers, "--module", transformtest.BuildFile(t, "examples/uppercase"),
		"--input", "events", "--output", "EVENTS", "--from", "beginning")
	producer := newClient()
	send := func(from, to int) {
		for i := from; i < to; i++ {
			if err := producer.ProduceSync(ctx, &kgo.Record{Topic: "events", Value: []byte(fmt.Sprint("e", i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	readAll := func(want int) map[string]bool {
		cl := newClient(kgo.ConsumeTopics("EVENTS"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		seen := map[string]bool{}
		for len(seen) < want {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("read %d of %d distinct outputs", len(seen), want)
			}
			fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
		}
		cl.Close()
		return seen
	}
	send(0, 100)
	readAll(100)
	md, err := adm.Metadata(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	leader := md.Topics["events"].Partitions[0].Leader
	nodes[leader-1].Stop()
	send(100, 200)
	seen := readAll(200)
	for i := range 200 {
		if !seen[fmt.Sprint("E", i)] {
			t.Fatalf("E%d missing after the leader stopped", i)
		}
	}
}

// A transform whose output partition is led by another node sends its
// batches to that leader as they are (not record by record through a
// Kafka client), in order: whole kept batches and batches the runner
// built alike.
func TestTransformForwardsBatchesToRemoteLeader(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, func(_ int, c *config.Config) { c.TransformInterval = 50 * time.Millisecond })
	servertest.WaitReady(t, nodes...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := client(t, nodes[0], kgo.ProducerLinger(0))
	// One replica each; the controller places consecutive topics on
	// consecutive nodes, so the two leaders differ.
	adm := kadm.NewClient(cl)
	for _, name := range []string{"fin", "fout"} {
		if resp, err := adm.CreateTopic(ctx, 1, 1, nil, name); err != nil || resp.Err != nil {
			t.Fatalf("create %s: %v %v", name, err, resp.Err)
		}
	}
	for {
		md, err := adm.Metadata(ctx, "fin", "fout")
		if err != nil {
			t.Fatal(err)
		}
		in, out := md.Topics["fin"].Partitions[0].Leader, md.Topics["fout"].Partitions[0].Leader
		if in >= 0 && out >= 0 {
			if in == out {
				t.Fatalf("input and output both led by node %d", in)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no leaders elected")
		}
		time.Sleep(20 * time.Millisecond) // polling for the new partitions' first leaders
	}
	brokers := "--brokers=" + nodes[0].Addr()
	clitest.MustRun(t, "", "transform", "deploy", "fwd", brokers, "--module", transformtest.BuildFile(t, "internal/transform/testdata/prefix"),
		"--input", "fin", "--output", "fout", "--from", "beginning", "--param", "prefix=keep")
	var want []string
	for b := range 20 {
		var recs []*kgo.Record
		for i := range 10 {
			v := fmt.Sprintf("keep-%d-%d", b, i)
			if b%2 == 1 && i%3 == 0 {
				v = fmt.Sprintf("drop-%d-%d", b, i) // odd batches are not kept whole
			} else {
				want = append(want, v)
			}
			recs = append(recs, &kgo.Record{Topic: "fin", Value: []byte(v)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, r := range consumeN(t, nodes[0], "fout", len(want)) {
		if r.ProducerID != -1 {
			t.Fatalf("%s came through a Kafka client (producer id %d), not as the runner's batch", r.Value, r.ProducerID)
		}
		got = append(got, string(r.Value))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("outputs out of order or wrong:\n got %q\nwant %q", got, want)
	}
}
