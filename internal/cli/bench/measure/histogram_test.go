package measure

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBucketsCoverEveryValueOnce(t *testing.T) {
	// Consecutive buckets must tile [0, MaxInt64] with no gap or overlap.
	var next int64
	for i := 0; i < numBuckets; i++ {
		lo, hi := bucketBounds(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, next)
		}
		if hi < lo {
			t.Fatalf("bucket %d: hi %d < lo %d", i, hi, lo)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d [%d,%d]: bucketOf gives %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if hi == math.MaxInt64 {
			if i != numBuckets-1 {
				t.Fatalf("MaxInt64 in bucket %d of %d", i, numBuckets)
			}
			return
		}
		next = hi + 1
	}
	t.Fatalf("buckets end at %d, before MaxInt64", next-1)
}

func TestBucketRelativeError(t *testing.T) {
	for i := 0; i < numBuckets; i++ {
		lo, hi := bucketBounds(i)
		if lo == 0 {
			continue
		}
		if rel := float64(hi-lo) / float64(lo); rel > 1.0/subCount {
			t.Fatalf("bucket %d [%d,%d]: width/lo = %g > 1/%d", i, lo, hi, rel, subCount)
		}
	}
}

func TestQuantileAgainstSorted(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	h := NewHistogram()
	var vals []int64
	for range 100000 {
		// Log-uniform from 1 µs to 1 s, like latencies.
		v := int64(math.Exp(rng.Float64()*math.Log(1e6)) * 1e3)
		vals = append(vals, v)
		h.Record(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0, 0.01, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
		rank := max(int(math.Ceil(q*float64(len(vals)))), 1)
		want := vals[rank-1]
		got := h.Quantile(q)
		if got < want || float64(got-want) > float64(want)/subCount {
			t.Errorf("q=%g: got %d, exact %d (allowed up to +1/%d)", q, got, want, subCount)
		}
	}
	if h.Min() != vals[0] || h.Max() != vals[len(vals)-1] {
		t.Errorf("min/max %d/%d, want %d/%d", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
	}
	if h.Count() != uint64(len(vals)) {
		t.Errorf("count %d", h.Count())
	}
}

func TestSmallValuesExact(t *testing.T) {
	h := NewHistogram()
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	for _, c := range []struct {
		q    float64
		want int64
	}{{0.5, 50}, {0.99, 99}, {0.999, 100}, {1, 100}, {0.001, 1}} {
		if got := h.Quantile(c.q); got != c.want {
			t.Errorf("q=%g: got %d want %d", c.q, got, c.want)
		}
	}
	if h.Mean() != 50.5 {
		t.Errorf("mean %g", h.Mean())
	}
}

func TestQuantileClampedToMax(t *testing.T) {
	h := NewHistogram()
	h.Record(1_000_001) // a wide bucket; its upper bound is far above the value
	if got := h.Quantile(0.5); got != 1_000_001 {
		t.Errorf("got %d, want the recorded value", got)
	}
}

func TestEmptyNegativeMergeReset(t *testing.T) {
	h := NewHistogram()
	if h.Quantile(0.99) != 0 || h.Min() != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	h.Record(-5)
	if h.Min() != 0 || h.Count() != 1 {
		t.Fatalf("negative not counted as zero: min %d count %d", h.Min(), h.Count())
	}
	o := NewHistogram()
	o.Record(1000)
	o.Record(math.MaxInt64)
	h.Merge(o)
	h.Merge(NewHistogram())
	if h.Count() != 3 || h.Min() != 0 || h.Max() != math.MaxInt64 {
		t.Fatalf("merged: count %d min %d max %d", h.Count(), h.Min(), h.Max())
	}
	if got := h.Quantile(0.5); got < 1000 || got > 1000+1000/subCount {
		t.Fatalf("merged median %d", got)
	}
	h.Reset()
	if h.Count() != 0 || h.Max() != 0 || h.Quantile(1) != 0 {
		t.Fatal("reset histogram not empty")
	}
	h.Record(7)
	if h.Min() != 7 {
		t.Fatalf("min after reset %d", h.Min())
	}
}

func BenchmarkRecord(b *testing.B) {
	h := NewHistogram()
	for i := 0; b.Loop(); i++ {
		h.Record(int64(i) * 997)
	}
}
