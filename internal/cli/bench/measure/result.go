package measure

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Result is what one benchmark run reports. MB is 10^6 bytes; bytes count
// record values and keys, not protocol overhead.
type Result struct {
	Mode          string  `json:"mode"`
	Target        string  `json:"target,omitempty"`
	RecordSize    int     `json:"record_size,omitempty"`
	TargetRate    float64 `json:"target_rate,omitempty"`
	Records       int64   `json:"records"`
	Bytes         int64   `json:"bytes"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	Errors        int64   `json:"errors"`
	// TotalRecords counts every record the run moved, warmup and the final
	// flush included: the divisor for a server's CPU time over the run.
	TotalRecords int64    `json:"total_records"`
	Ack          *Latency `json:"ack_latency_ms,omitempty"`
	E2E          *Latency `json:"e2e_latency_ms,omitempty"`
}

// Latency summarizes a histogram of nanoseconds in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// Summarize turns a histogram of nanoseconds into a Latency in ms.
func Summarize(h *Histogram) *Latency {
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	return &Latency{
		Count: h.Count(),
		Mean:  h.Mean() / 1e6,
		P50:   ms(h.Quantile(0.50)),
		P90:   ms(h.Quantile(0.90)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.Max()),
	}
}

// Throughput fills the counts and rates of r from what was moved in elapsed.
func (r *Result) Throughput(records, bytes int64, elapsed time.Duration) {
	r.Records, r.Bytes = records, bytes
	r.Seconds = elapsed.Seconds()
	if r.Seconds > 0 {
		r.RecordsPerSec = float64(records) / r.Seconds
		r.MBPerSec = float64(bytes) / 1e6 / r.Seconds
	}
}

// CheckFormat reports whether format is one Write understands.
func CheckFormat(format string) error {
	switch format {
	case "text", "json":
		return nil
	}
	return fmt.Errorf("unknown format %q (want text or json)", format)
}

// Write prints r as text for people or as one line of JSON for scripts.
func Write(w io.Writer, format string, r Result) error {
	switch format {
	case "json":
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode result: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "text":
		return writeText(w, r)
	}
	return CheckFormat(format)
}

func writeText(w io.Writer, r Result) error {
	head := r.Mode
	if r.Target != "" {
		head += " " + r.Target
	}
	if r.RecordSize > 0 {
		head += fmt.Sprintf(", %d-byte records", r.RecordSize)
	}
	if r.TargetRate > 0 {
		head += fmt.Sprintf(", target %.0f records/s", r.TargetRate)
	}
	lines := []string{
		head,
		fmt.Sprintf("  %d records in %.2f s: %.0f records/s, %.1f MB/s, %d errors",
			r.Records, r.Seconds, r.RecordsPerSec, r.MBPerSec, r.Errors),
	}
	if r.Ack != nil {
		lines = append(lines, "  ack latency "+r.Ack.text())
	}
	if r.E2E != nil {
		lines = append(lines, "  e2e latency "+r.E2E.text())
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(w, l); err != nil {
			return err
		}
	}
	return nil
}

func (l *Latency) text() string {
	return fmt.Sprintf("ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f  (n=%d)",
		l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean, l.Count)
}
