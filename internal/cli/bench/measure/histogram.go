// Package measure holds the pure parts of the load generators: a latency
// histogram, a fixed-rate pacer that guards against coordinated omission,
// send timestamps carried in record values, and one result type with its
// text and JSON views. It does no I/O of its own so that every piece is unit
// tested, and it imports only the standard library so that the JetStream
// load generator in bench/peers reports exactly the same way.
package measure

import (
	"math"
	"math/bits"
	"time"
)

// A hand-written histogram rather than a module: github.com/HdrHistogram/hdrhistogram-go
// is the usual choice, but it is archived and would be a new dependency of the
// main module for about a hundred lines of code. This one keeps the idea that
// matters (log-linear buckets: linear sub-buckets inside each power of two,
// so the relative error is bounded at every scale) and nothing else.

// subBits sets the precision: 2^subBits linear sub-buckets per power of two
// give a relative error below 2^-subBits (under 0.8%).
const subBits = 7

const (
	subCount = 1 << subBits
	// Values below 2*subCount land in exact buckets; above, every power of
	// two adds subCount buckets, up to 2^63-1 (shift 63-1-subBits).
	numBuckets = (64 - subBits) * subCount
)

// Histogram counts non-negative int64 values (nanoseconds here) in
// log-linear buckets. Min, max, count and mean are exact; quantiles are
// within 1/128 of the true value. The zero value is not usable; call
// NewHistogram. A Histogram is not safe for concurrent use: give each
// goroutine its own and Merge them.
type Histogram struct {
	counts []uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, numBuckets), min: math.MaxInt64}
}

// bucketOf maps v >= 0 to its bucket index.
func bucketOf(v int64) int {
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 1 - subBits
	return shift*subCount + int(v>>shift)
}

// bucketBounds is the inclusive range of values that land in bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < 2*subCount {
		return int64(i), int64(i)
	}
	shift := i/subCount - 1
	mant := int64(i%subCount + subCount)
	lo = mant << shift
	return lo, lo + (int64(1) << shift) - 1
}

// Record adds one value; negative values count as zero.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// RecordDuration adds d in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Merge adds every value of o into h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Reset empties h.
func (h *Histogram) Reset() {
	clear(h.counts)
	h.n, h.sum, h.min, h.max = 0, 0, math.MaxInt64, 0
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Min is the smallest recorded value, 0 when empty.
func (h *Histogram) Min() int64 {
	if h.n == 0 {
		return 0
	}
	return h.min
}

// Max is the largest recorded value, 0 when empty.
func (h *Histogram) Max() int64 { return h.max }

// Mean is the exact mean, 0 when empty.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns a value v such that at least q of the recorded values are
// <= v: the upper bound of the bucket holding the ceil(q*n)-th smallest
// value, clamped to [Min, Max]. Reporting the upper bound errs towards higher
// latency, never lower. It is 0 when empty.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	if rank >= h.n {
		return h.max
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketBounds(i)
			return min(max(hi, h.min), h.max)
		}
	}
	return h.max
}
