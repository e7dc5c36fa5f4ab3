package transform_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/internal/record"
	"github.com/weir-dev/weir/internal/transform"
	"github.com/weir-dev/weir/internal/transform/transformtest"
)

func newRuntime(t testing.TB, o transform.Options) *transform.Runtime {
	t.Helper()
	r, err := transform.NewRuntime(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func instance(t testing.TB, r *transform.Runtime, pkg string, cfg transform.Config) *transform.Instance {
	t.Helper()
	ctx := context.Background()
	m, err := r.Compile(ctx, transformtest.Build(t, pkg))
	if err != nil {
		t.Fatal(err)
	}
	i, err := m.Instantiate(ctx, cfg, func(line string) { t.Log("module:", line) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { i.Close(ctx) })
	return i
}

// batch builds a stored batch at base with the given values (key "k<i>",
// a header, timestamps 1000+i).
func batch(t testing.TB, base int64, c record.Compression, values ...string) []byte {
	t.Helper()
	recs := make([]record.Record, len(values))
	for i, v := range values {
		recs[i] = record.Record{OffsetDelta: int32(i), TimestampDelta: int64(i), Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(v),
			Headers: []record.RecordHeader{{Key: "h", Value: []byte(v)}}}
	}
	b, err := record.Build(record.BatchOptions{FirstTimestamp: 1000, Compression: c, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs)
	if err != nil {
		t.Fatal(err)
	}
	record.SetBaseOffset(b, base)
	return b
}

func TestMapEveryCodec(t *testing.T) {
	r := newRuntime(t, transform.Options{})
	i := instance(t, r, "examples/uppercase", transform.Config{Input: "in", Outputs: []string{"out"}})
	if i.Kind() != transform.KindMap {
		t.Fatalf("kind %v", i.Kind())
	}
	d := record.NewDecompressor()
	defer d.Close()
	for _, c := range []record.Compression{record.CompressionNone, record.CompressionGzip, record.CompressionSnappy, record.CompressionLZ4, record.CompressionZstd} {
		outs, err := i.ProcessBatch(context.Background(), batch(t, 500, c, "ab", "", "héllo"), d)
		if err != nil {
			t.Fatalf("codec %d: %v", c, err)
		}
		want := []string{"AB", "", "HÉLLO"}
		if len(outs) != len(want) {
			t.Fatalf("codec %d: %d outputs", c, len(outs))
		}
		for k, o := range outs {
			if string(o.Value) != want[k] || string(o.Key) != fmt.Sprintf("k%d", k) || o.SourceOffset != int64(500+k) ||
				o.Timestamp != int64(1000+k) || o.Output != 0 || o.Err != "" || len(o.Headers) != 1 || o.Headers[0].Key != "h" {
				t.Fatalf("codec %d output %d: %+v", c, k, o)
			}
		}
	}
}

// Compressed input is decompressed straight into the module's memory;
// a batch bigger than the module's input buffer so far goes in by another
// way the first time. Every codec, every size, the same outputs.
func TestCompressedInputOfAnySize(t *testing.T) {
	r := newRuntime(t, transform.Options{})
	for _, c := range []record.Compression{record.CompressionGzip, record.CompressionSnappy, record.CompressionLZ4, record.CompressionZstd} {
		i := instance(t, r, "examples/uppercase", transform.Config{Input: "in", Outputs: []string{"out"}})
		var big []string
		for k := range 40 {
			big = append(big, strings.Repeat(string(rune('a'+k%26)), 4<<10)) // 160 KiB in all
		}
		for _, values := range [][]string{big, {"ab", "cd"}, big, {"ef"}} {
			outs, err := i.ProcessBatch(context.Background(), batch(t, 500, c, values...), nil)
			if err != nil {
				t.Fatalf("codec %d: %v", c, err)
			}
			if len(outs) != len(values) {
				t.Fatalf("codec %d: %d outputs for %d records", c, len(outs), len(values))
			}
			for k, o := range outs {
				if want := strings.ToUpper(values[k]); string(o.Value) != want || string(o.Key) != fmt.Sprintf("k%d", k) ||
					o.SourceOffset != int64(500+k) || len(o.Headers) != 1 || string(o.Headers[0].Value) != values[k] {
					t.Fatalf("codec %d output %d: %d-byte value %.8q, key %q, offset %d", c, k, len(o.Value), o.Value, o.Key, o.SourceOffset)
				}
			}
		}
		i.Close(context.Background())
	}
}

func TestFilterWithParams(t *testing.T) {
	r := newRuntime(t, transform.Options{})
	i := instance(t, r, "examples/json-filter", transform.Config{Params: map[string]string{"field": "region", "equals": "eu"}})
	if i.Kind() != transform.KindFilter {
		t.Fatalf("kind %v", i.Kind())
	}
	outs, err := i.ProcessBatch(context.Background(), batch(t, 0, 0,
		`{"region":"eu","n":1}`, `{"region":"us"}`, `not json`, `{"n":2}`, `{"region":"eu","n":3}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || outs[0].SourceOffset != 0 || outs[1].SourceOffset != 4 {
		t.Fatalf("outputs %+v", outs)
	}
}

func TestPIIMask(t *testing.T) {
	r := newRuntime(t, transform.Options{})
	i := instance(t, r, "examples/pii-mask", transform.Config{Params: map[string]string{"fields": "ssn,email", "pattern": `\d{4}-\d{4}`}})
	outs, err := i.ProcessBatch(context.Background(), batch(t, 0, 0,
		`{"name":"Ann","email":"a@x.org","card":"1234-5678","inner":{"ssn":"1"}}`, `call 1111-2222 now`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || string(outs[0].Value) != `{"card":"***","email":"***","inner":{"ssn":"***"},"name":"Ann"}` ||
		string(outs[1].Value) != "call *** now" {
		t.Fatalf("outputs %q %q", outs[0].Value, outs[1].Value)
	}
}

func TestFlatMapAndRecordErrors(t *testing.T) {
	r := newRuntime(t, transform.Options{})
	i := instance(t, r, "examples/split-array", transform.Config{})
	outs, err := i.ProcessBatch(context.Background(), batch(t, 10, 0, `[1,2,3]`, `{}`, `[]`, `["x"]`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range outs {
		if o.Err != "" {
			got = append(got, fmt.Sprintf("%d!", o.SourceOffset))
			continue
		}
		got = append(got, fmt.Sprintf("%d:%s", o.SourceOffset, o.Value))
	}
	if strings.Join(got, " ") != `10:1 10:2 10:3 11! 13:"x"` {
		t.Fatalf("outputs %v", got)
	}
}

func TestAggregateSnapshotRestore(t *testing.T) {
	r := newRuntime(t, transform.Options{})
	ctx := context.Background()
	a := instance(t, r, "examples/key-counter", transform.Config{})
	if a.Kind() != transform.KindAggregate {
		t.Fatalf("kind %v", a.Kind())
	}
	if _, err := a.ProcessBatch(ctx, batch(t, 0, 0, "x", "y", "z"), nil); err != nil { // k0, k1, k2 once each
		t.Fatal(err)
	}
	state, err := a.Snapshot(ctx)
	if err != nil || len(state) == 0 {
		t.Fatalf("snapshot %q: %v", state, err)
	}
	b := instance(t, r, "examples/key-counter", transform.Config{})
	if err := b.Restore(ctx, state); err != nil {
		t.Fatal(err)
	}
	outs, err := b.ProcessBatch(ctx, batch(t, 3, 0, "x", "y"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || string(outs[0].Key) != "k0" || string(outs[0].Value) != "2" || string(outs[1].Value) != "2" {
		t.Fatalf("counts after restore: %+v", outs)
	}
}

// A module that loops, allocates without bound or panics is stopped, its
// instance is discarded, and the runtime keeps serving other instances.
func TestSandboxStopsBadModules(t *testing.T) {
	// The budget stops the loop; the hog meets the memory cap long before
	// its own, longer budget.
	short := newRuntime(t, transform.Options{Budget: 300 * time.Millisecond})
	small := newRuntime(t, transform.Options{Budget: time.Minute, MemoryLimit: 32 << 20})
	r := short
	ctx := context.Background()
	cases := []struct {
		r          *transform.Runtime
		pkg, value string
		want       error
	}{
		{short, "internal/transform/testdata/loop", "loop", transform.ErrBudget},
		{small, "internal/transform/testdata/hog", "hog", transform.ErrTrap},
		{short, "internal/transform/testdata/panics", "panic", transform.ErrTrap},
	}
	for _, c := range cases {
		i := instance(t, c.r, c.pkg, transform.Config{})
		if _, err := i.ProcessBatch(ctx, batch(t, 0, 0, "fine"), nil); err != nil {
			t.Fatalf("%s: a good record failed: %v", c.pkg, err)
		}
		_, err := i.ProcessBatch(ctx, batch(t, 1, 0, "fine", c.value), nil)
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, want %v", c.pkg, err, c.want)
		}
		if _, err := i.ProcessBatch(ctx, batch(t, 3, 0, "fine"), nil); err == nil {
			t.Fatalf("%s: the broken instance still answers", c.pkg)
		}
	}
	// Unharmed: another instance of a good module.
	up := instance(t, r, "examples/uppercase", transform.Config{})
	if outs, err := up.ProcessBatch(ctx, batch(t, 0, 0, "ok"), nil); err != nil || string(outs[0].Value) != "OK" {
		t.Fatalf("after the bad modules: %v %v", outs, err)
	}
	// An error a map returns fails only its record.
	p := instance(t, r, "internal/transform/testdata/panics", transform.Config{})
	outs, err := p.ProcessBatch(ctx, batch(t, 0, 0, "a", "fail", "b"), nil)
	if err != nil || len(outs) != 3 || outs[1].Err != "cannot take this record" || outs[1].SourceOffset != 1 {
		t.Fatalf("record error: %+v %v", outs, err)
	}
}

func TestInvalidModulesRejected(t *testing.T) {
	r := newRuntime(t, transform.Options{})
	ctx := context.Background()
	if _, err := r.Compile(ctx, []byte("\x00asm garbage")); !errors.Is(err, transform.ErrInvalidModule) {
		t.Fatalf("garbage: %v", err)
	}
	_, err := r.Compile(ctx, transformtest.Build(t, "internal/transform/testdata/command"))
	if !errors.Is(err, transform.ErrInvalidModule) || !strings.Contains(err.Error(), "weir_abi_v1") {
		t.Fatalf("a plain WASI command: %v", err)
	}
}

func TestCompiledCodeIsCached(t *testing.T) {
	dir := t.TempDir()
	wasm := transformtest.Build(t, "examples/uppercase")
	for round := range 2 {
		r := newRuntime(t, transform.Options{CacheDir: dir})
		if _, err := r.Compile(context.Background(), wasm); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			t.Fatalf("round %d: cache dir holds nothing: %v", round, err)
		}
		r.Close(context.Background())
	}
}

// BenchmarkMap200B measures a map module over batches of 100 records of
// 200 bytes, per record: identity (the SDK's and host's own cost) and
// uppercase, with the time budget enforced (the default) and unbounded.
func BenchmarkMap200B(b *testing.B) {
	for _, pkg := range []string{"internal/transform/testdata/dropall", "internal/transform/testdata/prefix", "internal/transform/testdata/identity", "examples/uppercase"} {
		for _, unbounded := range []bool{false, true} {
			name := pkg[strings.LastIndexByte(pkg, '/')+1:] + "/budget"
			if unbounded {
				name = pkg[strings.LastIndexByte(pkg, '/')+1:] + "/unbounded"
			}
			b.Run(name, func(b *testing.B) { benchMap(b, pkg, unbounded) })
		}
	}
}

func benchMap(b *testing.B, pkg string, unbounded bool) {
	r := newRuntime(b, transform.Options{Unbounded: unbounded})
	benchBatches(b, instance(b, r, pkg, transform.Config{}), true)
}

// BenchmarkFilterKeyless200B is the deployed filter's work per record
// (TestDeployedFilterThroughput's records have no key): the prefix filter
// keeping every record.
func BenchmarkFilterKeyless200B(b *testing.B) {
	r := newRuntime(b, transform.Options{})
	benchBatches(b, instance(b, r, "internal/transform/testdata/prefix", transform.Config{Params: map[string]string{"prefix": "v"}}), false)
}

// benchBatches runs i over batches of 100 records of 200 bytes (a short
// key unless keyless, a 200-byte value, no headers) and reports the time
// per record.
func benchBatches(b *testing.B, i *transform.Instance, keyed bool) {
	recs := make([]record.Record, 100)
	for k := range recs {
		recs[k] = record.Record{OffsetDelta: int32(k), TimestampDelta: int64(k), Value: bytes.Repeat([]byte("v"), 200)}
		if keyed {
			recs[k].Key = fmt.Appendf(nil, "k%d", k)
		}
	}
	in, err := record.Build(record.BatchOptions{FirstTimestamp: 1000, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs)
	if err != nil {
		b.Fatal(err)
	}
	values := recs
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := i.ProcessBatch(ctx, in, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(values)), "ns/record")
}

// A filter that keeps a whole batch: ProcessBatchRefs says so instead of
// listing every record, and ExpandWhole lists them when asked.
func TestFilterKeepsWholeBatch(t *testing.T) {
	r := newRuntime(t, transform.Options{})
	i := instance(t, r, "internal/transform/testdata/prefix", transform.Config{Params: map[string]string{"prefix": "keep"}})
	ctx := context.Background()
	for _, c := range []record.Compression{record.CompressionNone, record.CompressionZstd} {
		outs, whole, err := i.ProcessBatchRefs(ctx, batch(t, 500, c, "keep-a", "keep-b", "keep-c"), nil)
		if err != nil || !whole || len(outs) != 0 {
			t.Fatalf("%v: whole %v, outputs %+v, %v", c, whole, outs, err)
		}
		outs = i.ExpandWhole()
		if err := i.ResolveKept(outs); err != nil {
			t.Fatal(err)
		}
		var got []string
		for k, o := range outs {
			if !o.Kept || o.Output != 0 || o.SourceOffset != 500+int64(k) || o.Timestamp != 1000+int64(k) {
				t.Fatalf("%v: output %d = %+v", c, k, o)
			}
			got = append(got, string(o.Value))
		}
		if want := []string{"keep-a", "keep-b", "keep-c"}; !slices.Equal(got, want) {
			t.Fatalf("%v: values %q, want %q", c, got, want)
		}
		if i.WholeKeyless() {
			t.Fatalf("%v: keyed records reported keyless", c)
		}
		// Without keys, the record table says so.
		keyless, err := record.Build(record.BatchOptions{FirstTimestamp: 1000, Compression: c, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
			[]record.Record{{Value: []byte("keep-x")}, {OffsetDelta: 1, Value: []byte("keep-y")}})
		if err != nil {
			t.Fatal(err)
		}
		if _, whole, err := i.ProcessBatchRefs(ctx, keyless, nil); err != nil || !whole || !i.WholeKeyless() {
			t.Fatalf("%v: keyless batch: whole %v, keyless %v, %v", c, whole, i.WholeKeyless(), err)
		}
		// A batch with a record dropped is listed as before.
		if outs, whole, err := i.ProcessBatchRefs(ctx, batch(t, 503, c, "keep-d", "drop-e"), nil); err != nil || whole || len(outs) != 1 {
			t.Fatalf("%v: whole %v, outputs %+v, %v", c, whole, outs, err)
		}
	}
}

// Modules built with Redpanda's Data Transforms Go SDK (v1.1.0) run
// unmodified and give the same output as ours.
func TestRedpandaSDKModules(t *testing.T) {
	r := newRuntime(t, transform.Options{Budget: 10 * time.Second})
	ctx := context.Background()
	build := func(pkg string) []byte {
		b, err := os.ReadFile(transformtest.BuildCommand(t, "internal/transform/testdata/redpanda", pkg))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rp, err := r.Compile(ctx, build("uppercase"))
	if err != nil {
		t.Fatal(err)
	}
	rpi, err := rp.Instantiate(ctx, transform.Config{Input: "in", Outputs: []string{"out"}}, func(l string) { t.Log("module:", l) })
	if err != nil {
		t.Fatal(err)
	}
	defer rpi.Close(ctx)
	ours := instance(t, r, "examples/uppercase", transform.Config{Input: "in", Outputs: []string{"out"}})
	d := record.NewDecompressor()
	defer d.Close()
	for round := range 3 { // several batches through the same instance
		in := batch(t, int64(100*round), record.CompressionLZ4, "ab", "", "héllo", fmt.Sprint(round))
		a, err := rpi.ProcessBatch(ctx, in, d)
		if err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprint(a)
		b, err := ours.ProcessBatch(ctx, in, d)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint(b); got != want || len(a) != 4 {
			t.Fatalf("round %d: redpanda module %s\nours %s", round, got, want)
		}
	}

	route, err := r.Compile(ctx, build("routing"))
	if err != nil {
		t.Fatal(err)
	}
	ri, err := route.Instantiate(ctx, transform.Config{Input: "in", Outputs: []string{"first", "second"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ri.Close(ctx)
	outs, err := ri.ProcessBatch(ctx, batch(t, 0, 0, "a", "", "second", "b"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range outs {
		got = append(got, fmt.Sprintf("%d>%d:%s", o.SourceOffset, o.Output, o.Value))
	}
	if strings.Join(got, " ") != "0>0:a 2>1:second 3>0:b" {
		t.Fatalf("routing: %v", got)
	}
	// A panic in a Redpanda transform is a trap; the instance is done.
	if _, err := ri.ProcessBatch(ctx, batch(t, 4, 0, "boom"), nil); !errors.Is(err, transform.ErrTrap) {
		t.Fatalf("panic: %v", err)
	}
	if _, err := ri.ProcessBatch(ctx, batch(t, 5, 0, "a"), nil); err == nil {
		t.Fatal("a trapped instance still answers")
	}
}

// asModule reads an AssemblyScript example built by `make as-examples`.
// The test runs when WEIR_AS=1 (make interop sets it after building them)
// and then fails if the module is missing.
func asModule(t testing.TB, name string) []byte {
	t.Helper()
	if os.Getenv("WEIR_AS") == "" {
		t.Skip("AssemblyScript examples are built and tested by make interop (WEIR_AS=1)")
	}
	b, err := os.ReadFile("../../sdk/assemblyscript/build/" + name + ".wasm")
	if err != nil {
		t.Fatalf("%v (run make as-examples)", err)
	}
	return b
}

// The ABI is language-neutral: AssemblyScript modules give the same output
// as the Go SDK's.
func TestAssemblyScriptModules(t *testing.T) {
	r := newRuntime(t, transform.Options{})
	ctx := context.Background()
	up, err := r.Compile(ctx, asModule(t, "uppercase"))
	if err != nil {
		t.Fatal(err)
	}
	ui, err := up.Instantiate(ctx, transform.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ui.Close(ctx)
	goUp := instance(t, r, "examples/uppercase", transform.Config{})
	// The last value spans several 8-byte words (the AssemblyScript SDK
	// upper-cases a word at a time) with the letters' neighbours in ASCII.
	in := batch(t, 7, record.CompressionSnappy, "abc", "", "Mixed Case 1", "zz", "`az{@AZ[ the quick brown fox jumps over 0123456789 ~\x7f")
	a, err := ui.ProcessBatch(ctx, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := goUp.ProcessBatch(ctx, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(a) != fmt.Sprint(b) || len(a) != 5 || !strings.HasPrefix(string(a[4].Value), "`AZ{@AZ[ THE QUICK") {
		t.Fatalf("AssemblyScript %v\nGo %v", a, b)
	}
	fm, err := r.Compile(ctx, asModule(t, "contains"))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := fm.Instantiate(ctx, transform.Config{Params: map[string]string{"text": "needle"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fi.Close(ctx)
	if fi.Kind() != transform.KindFilter {
		t.Fatalf("kind %v", fi.Kind())
	}
	outs, err := fi.ProcessBatch(ctx, batch(t, 0, 0, "hay", "a needle here", "needle", "no"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || outs[0].SourceOffset != 1 || outs[1].SourceOffset != 2 {
		t.Fatalf("filter outputs %+v", outs)
	}
	// The same filter in both languages keeps the same records.
	pm, err := r.Compile(ctx, asModule(t, "prefix"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := transform.Config{Params: map[string]string{"prefix": "keep"}}
	pi, err := pm.Instantiate(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pi.Close(ctx)
	goPrefix := instance(t, r, "internal/transform/testdata/prefix", cfg)
	values := make([]string, 21) // a bitmap of more than one byte
	for k := range values {
		values[k] = fmt.Sprintf("drop-%d", k)
		if k%3 == 0 {
			values[k] = fmt.Sprintf("keep-%d", k)
		}
	}
	in = batch(t, 30, record.CompressionLZ4, values...)
	if a, err = pi.ProcessBatch(ctx, in, nil); err != nil {
		t.Fatal(err)
	}
	if b, err = goPrefix.ProcessBatch(ctx, in, nil); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(a) != fmt.Sprint(b) || len(a) != 7 || a[6].SourceOffset != 48 || string(a[6].Value) != "keep-18" {
		t.Fatalf("AssemblyScript %v\nGo %v", a, b)
	}
}

func BenchmarkAssemblyScriptMap200B(b *testing.B) {
	wasm := asModule(b, "uppercase")
	for _, unbounded := range []bool{false, true} {
		name := "budget"
		if unbounded {
			name = "unbounded"
		}
		b.Run(name, func(b *testing.B) {
			r := newRuntime(b, transform.Options{Unbounded: unbounded})
			ctx := context.Background()
			m, err := r.Compile(ctx, wasm)
			if err != nil {
				b.Fatal(err)
			}
			i, err := m.Instantiate(ctx, transform.Config{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer i.Close(ctx)
			benchBatches(b, i, true)
		})
	}
}

// BenchmarkColdStartFromCache is what a broker pays to start a module it
// compiled before (after a restart): a new runtime on the cache
// directory, compile (a cache hit) and one instance.
func BenchmarkColdStartFromCache(b *testing.B) {
	dir := b.TempDir()
	wasm := transformtest.Build(b, "examples/uppercase")
	ctx := context.Background()
	warm := newRuntime(b, transform.Options{CacheDir: dir})
	if _, err := warm.Compile(ctx, wasm); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		r, err := transform.NewRuntime(ctx, transform.Options{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		m, err := r.Compile(ctx, wasm)
		if err != nil {
			b.Fatal(err)
		}
		i, err := m.Instantiate(ctx, transform.Config{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		i.Close(ctx)
		r.Close(ctx)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/start")
}

// The sandbox: no files, no network, no real clock, no environment.
func TestSandboxHidesTheHost(t *testing.T) {
	r := newRuntime(t, transform.Options{})
	i := instance(t, r, "internal/transform/testdata/sandbox", transform.Config{})
	outs, err := i.ProcessBatch(context.Background(), batch(t, 0, 0, "x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := string(outs[0].Value)
	if !strings.HasPrefix(got, "file=true net=true year=") || !strings.HasSuffix(got, " env=0") || strings.Contains(got, fmt.Sprint(time.Now().Year())) {
		t.Fatalf("the module saw %q", got)
	}
}

func TestFilterMapKind(t *testing.T) {
	r := newRuntime(t, transform.Options{})
	i := instance(t, r, "internal/transform/testdata/doubler", transform.Config{})
	if i.Kind() != transform.KindFilterMap {
		t.Fatalf("kind %v", i.Kind())
	}
	outs, err := i.ProcessBatch(context.Background(), batch(t, 0, 0, "2", "x", "21"), nil)
	if err != nil || len(outs) != 2 || string(outs[0].Value) != "4" || string(outs[1].Value) != "42" || outs[1].SourceOffset != 2 {
		t.Fatalf("outputs %+v %v", outs, err)
	}
}

// A filter answers with keep entries: the host gives back the input
// records themselves (compressed input included), at once with
// ProcessBatch, on demand with ProcessBatchRefs.
func TestFilterKeepsInputRecords(t *testing.T) {
	r := newRuntime(t, transform.Options{})
	i := instance(t, r, "internal/transform/testdata/prefix", transform.Config{Params: map[string]string{"prefix": "keep"}})
	ctx := context.Background()
	for _, c := range []record.Compression{record.CompressionNone, record.CompressionZstd} {
		in := batch(t, 500, c, "keep-a", "drop-b", "keep-c")
		check := func(outs []transform.Output) {
			t.Helper()
			if len(outs) != 2 {
				t.Fatalf("%v: %d outputs", c, len(outs))
			}
			for k, want := range []struct {
				off   int64
				value string
			}{{500, "keep-a"}, {502, "keep-c"}} {
				o := outs[k]
				if !o.Kept || o.SourceOffset != want.off || string(o.Value) != want.value || string(o.Key) != fmt.Sprintf("k%d", want.off-500) ||
					o.Timestamp != 1000+want.off-500 || len(o.Headers) != 1 || string(o.Headers[0].Value) != want.value {
					t.Fatalf("%v: output %d = %+v", c, k, o)
				}
			}
		}
		outs, err := i.ProcessBatch(ctx, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		check(outs)
		refs, whole, err := i.ProcessBatchRefs(ctx, in, nil)
		if err != nil || whole {
			t.Fatal(err, whole)
		}
		if len(refs) != 2 || refs[0].Value != nil || !refs[1].Kept || refs[1].SourceOffset != 502 {
			t.Fatalf("%v: references %+v", c, refs)
		}
		if err := i.ResolveKept(refs); err != nil {
			t.Fatal(err)
		}
		check(refs)
	}
}
