package report

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	s := Summarize([]float64{3, 1, math.NaN(), 2})
	if s.Median != 2 || s.Min != 1 || s.Max != 3 || s.N != 3 {
		t.Fatalf("%+v", s)
	}
	if s := Summarize([]float64{4, 1, 3, 2}); s.Median != 2.5 {
		t.Fatalf("even count median %v", s.Median)
	}
	if s := Summarize(nil); !math.IsNaN(s.Median) {
		t.Fatalf("empty median %v", s.Median)
	}
}

const sample = `
{"system":"weir","run":1,"phase":"start","ready_ms":20,"rss_kb":20480}
{"system":"weir","run":1,"phase":"produce","cpu_ticks":100,"clk_tck":100,"wall_ns":2000000000,"result":{"mode":"produce","records":900000,"bytes":0,"seconds":1,"records_per_sec":900000,"mb_per_sec":900,"errors":0,"total_records":1000000,"ack_latency_ms":{"count":9,"mean":1,"p50":1,"p90":1,"p99":2,"p99_9":3,"max":4}}}
{"system":"weir","run":2,"phase":"produce","cpu_ticks":300,"clk_tck":100,"wall_ns":2000000000,"result":{"mode":"produce","records":1,"bytes":0,"seconds":1,"records_per_sec":300000,"mb_per_sec":300,"errors":0,"total_records":1000000}}
{"system":"weir","run":3,"phase":"produce","cpu_ticks":200,"clk_tck":100,"wall_ns":2000000000,"result":{"mode":"produce","records":1,"bytes":0,"seconds":1,"records_per_sec":600000,"mb_per_sec":600,"errors":0,"total_records":1000000}}
{"system":"kfake","run":1,"phase":"produce","cpu_ticks":100,"clk_tck":100,"wall_ns":1000000000,"result":{"mode":"produce","records":1,"bytes":0,"seconds":1,"records_per_sec":400000,"mb_per_sec":400,"errors":0,"total_records":1}}
`

func TestBuildAndTargets(t *testing.T) {
	lines, err := Read(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	tb := Build(lines)
	if s := tb["produce records/s"]["weir"]; s.Median != 600000 || s.Min != 300000 || s.Max != 900000 {
		t.Fatalf("weir produce %+v", s)
	}
	if got := tb.Median("produce server CPU µs/record", "weir"); got != 2 {
		t.Fatalf("cpu per record %v, want 2 µs", got)
	}
	if got := tb.Median("produce server CPU cores", "weir"); got != 1 {
		t.Fatalf("cpu cores %v", got)
	}
	if got := tb.Ratio("produce records/s", "weir", "kfake"); got != 1.5 {
		t.Fatalf("ratio %v", got)
	}
	targets := tb.Targets("weir", "kfake", "nats")
	byGoal := map[string]Target{}
	for _, tg := range targets {
		byGoal[tg.Goal] = tg
	}
	if !byGoal["produce throughput ≥ 1.0x kfake with fsync"].Met {
		t.Error("1.5x kfake should meet the target")
	}
	if byGoal["produce throughput ≥ 3x JetStream default"].Met {
		t.Error("missing JetStream data must not count as met")
	}
	if byGoal["broker CPU per produced record ≤ 1.5 µs"].Met {
		t.Error("2 µs should miss the CPU target")
	}
	if !byGoal["idle RSS < 30 MB"].Met || !byGoal["start to ready < 100 ms"].Met {
		t.Error("20 MB and 20 ms should meet their targets")
	}

	var buf bytes.Buffer
	Write(&buf, tb, []System{{"weir", "Weir"}, {"kfake", "kfake"}, {"nats", "JetStream"}}, targets)
	out := buf.String()
	for _, want := range []string{
		"| metric | Weir | kfake | JetStream | Weir/kfake | Weir/JetStream |",
		"| produce records/s | 600,000 [300,000..900,000] | 400,000 | – | 1.50x | – |",
		"| idle RSS MB | 20.0 | – | – | – | – |",
		"| broker CPU per produced record ≤ 1.5 µs | 2.00 µs | no |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestFormat(t *testing.T) {
	for v, want := range map[float64]string{1234567: "1,234,567", 123.4: "123", 12.34: "12.3", 1.234: "1.23", 0.1234: "0.123", -4321: "-4,321"} {
		if got := Format(v); got != want {
			t.Errorf("Format(%v) = %q, want %q", v, got, want)
		}
	}
}
