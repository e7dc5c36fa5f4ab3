package measure

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func sampleResult() Result {
	r := Result{Mode: "e2e", Target: "127.0.0.1:9092", RecordSize: 1024, TargetRate: 5000}
	r.Throughput(50000, 50000*1024, 10*time.Second)
	r.TotalRecords = 50000
	r.Ack = &Latency{Count: 1000, Mean: 0.5, P50: 0.5, P90: 0.9, P99: 0.99, P999: 0.999, Max: 1}
	r.E2E = &Latency{Count: 1000, Mean: 0.25, P50: 0.25, P90: 0.45, P99: 0.495, P999: 0.4985, Max: 0.5}
	return r
}

func TestSummarize(t *testing.T) {
	h := NewHistogram()
	for v := int64(1); v <= 1000; v++ {
		h.Record(v * 1000) // 1 µs .. 1 ms
	}
	l := Summarize(h)
	near := func(got, want float64) bool { return got >= want && got <= want*(1+1.0/subCount) }
	if l.Count != 1000 || l.Max != 1 || l.Mean != 0.5005 ||
		!near(l.P50, 0.5) || !near(l.P90, 0.9) || !near(l.P99, 0.99) || !near(l.P999, 0.999) {
		t.Fatalf("summary %+v", l)
	}
}

func TestThroughput(t *testing.T) {
	r := sampleResult()
	if r.RecordsPerSec != 5000 || r.MBPerSec != 5.12 || r.Seconds != 10 {
		t.Fatalf("rates: %+v", r)
	}
	var z Result
	z.Throughput(10, 10, 0)
	if z.RecordsPerSec != 0 {
		t.Fatal("zero elapsed must not divide")
	}
}

func TestWriteText(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, "text", sampleResult()); err != nil {
		t.Fatal(err)
	}
	want := `e2e 127.0.0.1:9092, 1024-byte records, target 5000 records/s
  50000 records in 10.00 s: 5000 records/s, 5.1 MB/s, 0 errors
  ack latency ms: p50 0.500  p90 0.900  p99 0.990  p99.9 0.999  max 1.000  mean 0.500  (n=1000)
  e2e latency ms: p50 0.250  p90 0.450  p99 0.495  p99.9 0.498  max 0.500  mean 0.250  (n=1000)
`
	if buf.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestWriteJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, "json", sampleResult()); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if m["records_per_sec"] != 5000.0 || m["mode"] != "e2e" || m["total_records"] != 50000.0 {
		t.Fatalf("json: %s", buf.String())
	}
	e2e := m["e2e_latency_ms"].(map[string]any)
	if e2e["p99"] != 0.495 || e2e["p99_9"] != 0.4985 || e2e["count"] != 1000.0 {
		t.Fatalf("e2e: %v", e2e)
	}
	// Modes without latency leave the fields out.
	buf.Reset()
	if err := Write(&buf, "json", Result{Mode: "consume"}); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte("latency")) {
		t.Fatalf("consume result has latency: %s", buf.String())
	}
}

func TestUnknownFormat(t *testing.T) {
	if err := Write(&bytes.Buffer{}, "yaml", Result{}); err == nil {
		t.Fatal("yaml accepted")
	}
	if CheckFormat("json") != nil || CheckFormat("text") != nil {
		t.Fatal("known formats rejected")
	}
}
