// Package report turns the JSON lines scripts/bench-compare.sh collects
// into a table of medians with ranges, ratios of Weir to its peers, and
// the targets met or missed.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/weir-dev/weir/internal/cli/bench/measure"
)

// Line is one measurement the script records: a server start (ready time
// and idle memory) or one load phase with the server CPU it cost.
type Line struct {
	System  string          `json:"system"`
	Run     int             `json:"run"`
	Phase   string          `json:"phase"` // start, produce, consume, e2e
	ReadyMS float64         `json:"ready_ms,omitempty"`
	RSSKB   float64         `json:"rss_kb,omitempty"`
	Ticks   float64         `json:"cpu_ticks,omitempty"`
	ClkTck  float64         `json:"clk_tck,omitempty"`
	WallNS  float64         `json:"wall_ns,omitempty"`
	Result  *measure.Result `json:"result,omitempty"`
}

// Read parses JSON lines, skipping blank ones.
func Read(r io.Reader) ([]Line, error) {
	var out []Line
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// Stat is the median and range of one metric over runs.
type Stat struct {
	Median, Min, Max float64
	N                int
}

// Summarize returns the median and range of vs; NaN values are left out.
func Summarize(vs []float64) Stat {
	var xs []float64
	for _, v := range vs {
		if !math.IsNaN(v) {
			xs = append(xs, v)
		}
	}
	if len(xs) == 0 {
		return Stat{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	slices.Sort(xs)
	m := xs[len(xs)/2]
	if len(xs)%2 == 0 {
		m = (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	return Stat{Median: m, Min: xs[0], Max: xs[len(xs)-1], N: len(xs)}
}

// Metric is one row of the table: how to read it from a run's lines.
type Metric struct {
	Name string
	// Higher says whether a larger value is better (throughput) or worse
	// (latency, CPU, memory); it only matters for the targets.
	Higher bool
	Phase  string
	Value  func(Line) float64
}

func cpuSeconds(l Line) float64 {
	if l.ClkTck == 0 {
		return math.NaN()
	}
	return l.Ticks / l.ClkTck
}

func res(f func(*measure.Result) float64) func(Line) float64 {
	return func(l Line) float64 {
		if l.Result == nil {
			return math.NaN()
		}
		return f(l.Result)
	}
}

func lat(get func(*measure.Result) *measure.Latency, q func(*measure.Latency) float64) func(Line) float64 {
	return res(func(r *measure.Result) float64 {
		if l := get(r); l != nil && l.Count > 0 {
			return q(l)
		}
		return math.NaN()
	})
}

func ack(r *measure.Result) *measure.Latency { return r.Ack }
func e2e(r *measure.Result) *measure.Latency { return r.E2E }

// cpuPerRecord is server CPU microseconds per record moved in the phase.
func cpuPerRecord(l Line) float64 {
	if l.Result == nil || l.Result.TotalRecords == 0 {
		return math.NaN()
	}
	return cpuSeconds(l) * 1e6 / float64(l.Result.TotalRecords)
}

// cpuCores is the server's average CPU use in cores during the phase.
func cpuCores(l Line) float64 {
	if l.WallNS == 0 {
		return math.NaN()
	}
	return cpuSeconds(l) / (l.WallNS / 1e9)
}

// Metrics are the table's rows, in order.
var Metrics = []Metric{
	{"produce records/s", true, "produce", res(func(r *measure.Result) float64 { return r.RecordsPerSec })},
	{"produce MB/s", true, "produce", res(func(r *measure.Result) float64 { return r.MBPerSec })},
	{"produce ack p50 ms", false, "produce", lat(ack, func(l *measure.Latency) float64 { return l.P50 })},
	{"produce ack p99 ms", false, "produce", lat(ack, func(l *measure.Latency) float64 { return l.P99 })},
	{"produce server CPU cores", false, "produce", cpuCores},
	{"produce server CPU µs/record", false, "produce", cpuPerRecord},
	{"consume records/s", true, "consume", res(func(r *measure.Result) float64 { return r.RecordsPerSec })},
	{"consume MB/s", true, "consume", res(func(r *measure.Result) float64 { return r.MBPerSec })},
	{"consume server CPU µs/record", false, "consume", cpuPerRecord},
	{"e2e@5k ack p99 ms", false, "e2e", lat(ack, func(l *measure.Latency) float64 { return l.P99 })},
	{"e2e@5k p50 ms", false, "e2e", lat(e2e, func(l *measure.Latency) float64 { return l.P50 })},
	{"e2e@5k p99 ms", false, "e2e", lat(e2e, func(l *measure.Latency) float64 { return l.P99 })},
	{"e2e@5k p99.9 ms", false, "e2e", lat(e2e, func(l *measure.Latency) float64 { return l.P999 })},
	{"e2e@5k max ms", false, "e2e", lat(e2e, func(l *measure.Latency) float64 { return l.Max })},
	{"e2e@5k server CPU µs/record", false, "e2e", cpuPerRecord},
	{"idle RSS MB", false, "start", func(l Line) float64 { return l.RSSKB / 1024 }},
	{"start to ready ms", false, "start", func(l Line) float64 { return l.ReadyMS }},
}

// Table holds each metric's Stat per system.
type Table map[string]map[string]Stat // metric name -> system -> stat

// Build computes the table from the lines.
func Build(lines []Line) Table {
	t := Table{}
	for _, m := range Metrics {
		vals := map[string][]float64{}
		for _, l := range lines {
			if l.Phase == m.Phase {
				vals[l.System] = append(vals[l.System], m.Value(l))
			}
		}
		t[m.Name] = map[string]Stat{}
		for sys, vs := range vals {
			t[m.Name][sys] = Summarize(vs)
		}
	}
	return t
}

// Ratio is the ratio of a's median to b's, NaN if either is missing.
func (t Table) Ratio(metric, a, b string) float64 {
	sa, oka := t[metric][a]
	sb, okb := t[metric][b]
	if !oka || !okb || sb.Median == 0 {
		return math.NaN()
	}
	return sa.Median / sb.Median
}

// Median is the metric's median for a system, NaN if missing.
func (t Table) Median(metric, sys string) float64 {
	s, ok := t[metric][sys]
	if !ok {
		return math.NaN()
	}
	return s.Median
}

// Target is one goal from the issue.
type Target struct {
	Goal  string
	Value float64 // what was measured (a ratio or an absolute)
	Unit  string
	Met   bool
}

// Targets checks the goals for Weir against the peers.
func (t Table) Targets(weir, kfake, js string) []Target {
	var out []Target
	ge := func(goal string, v, limit float64, unit string) {
		out = append(out, Target{goal, v, unit, !math.IsNaN(v) && v >= limit})
	}
	le := func(goal string, v, limit float64, unit string, strict bool) {
		met := !math.IsNaN(v) && (v <= limit && !strict || v < limit)
		out = append(out, Target{goal, v, unit, met})
	}
	ge("produce throughput ≥ 1.0x kfake with fsync", t.Ratio("produce records/s", weir, kfake), 1.0, "x")
	ge("produce throughput ≥ 3x JetStream default", t.Ratio("produce records/s", weir, js), 3.0, "x")
	ge("consume throughput ≥ 1.0x kfake", t.Ratio("consume records/s", weir, kfake), 1.0, "x")
	le("broker CPU per produced record ≤ 1.5 µs", t.Median("produce server CPU µs/record", weir), 1.5, "µs", false)
	le("e2e p99 ≤ 3 ms at 5,000 records/s, linger 0, fsync on", t.Median("e2e@5k p99 ms", weir), 3, "ms", false)
	le("idle RSS < 30 MB", t.Median("idle RSS MB", weir), 30, "MB", true)
	le("start to ready < 100 ms", t.Median("start to ready ms", weir), 100, "ms", true)
	return out
}

// Format renders a number with a precision that suits its size.
func Format(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.Abs(v) >= 1000:
		return groupThousands(int64(math.Round(v)))
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

func groupThousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func cell(s Stat, ok bool) string {
	if !ok || math.IsNaN(s.Median) {
		return "–"
	}
	if s.N < 2 {
		return Format(s.Median)
	}
	return fmt.Sprintf("%s [%s..%s]", Format(s.Median), Format(s.Min), Format(s.Max))
}

// System is a column: its key in the lines and its heading.
type System struct{ Key, Label string }

// Write prints the table as Markdown: medians with [min..max], then the
// ratios of the first system to each of the others, then the targets.
func Write(w io.Writer, t Table, systems []System, targets []Target) {
	head := "| metric |"
	rule := "|---|"
	for _, s := range systems {
		head += " " + s.Label + " |"
		rule += "---|"
	}
	for _, s := range systems[1:] {
		head += fmt.Sprintf(" %s/%s |", systems[0].Label, s.Label)
		rule += "---|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, rule)
	for _, m := range Metrics {
		row := "| " + m.Name + " |"
		for _, s := range systems {
			st, ok := t[m.Name][s.Key]
			row += " " + cell(st, ok) + " |"
		}
		for _, s := range systems[1:] {
			r := t.Ratio(m.Name, systems[0].Key, s.Key)
			if math.IsNaN(r) {
				row += " – |"
			} else {
				row += fmt.Sprintf(" %.2fx |", r)
			}
		}
		fmt.Fprintln(w, row)
	}
	if len(targets) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | measured | met |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, tg := range targets {
		met := "no"
		if tg.Met {
			met = "yes"
		}
		v := Format(tg.Value)
		if tg.Unit == "x" {
			v = fmt.Sprintf("%.2fx", tg.Value)
		} else {
			v += " " + tg.Unit
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", tg.Goal, v, met)
	}
}
