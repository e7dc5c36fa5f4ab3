package measure

import (
	"testing"
	"time"
)

func TestPacerAt(t *testing.T) {
	start := time.Unix(100, 0)
	p := NewPacer(start, 5000)
	for _, c := range []struct {
		i    int64
		want time.Duration
	}{{0, 0}, {1, 200 * time.Microsecond}, {5000, time.Second}, {12345, 2469 * time.Millisecond}} {
		if got := p.At(c.i).Sub(start); got != c.want {
			t.Errorf("At(%d) = start+%v, want start+%v", c.i, got, c.want)
		}
	}
	// A rate that does not divide a second keeps its long-run average.
	p = NewPacer(start, 3)
	if got := p.At(3).Sub(start); got != time.Second {
		t.Errorf("3/s: At(3) = %v", got)
	}
}

func TestChargeFrom(t *testing.T) {
	sched := time.Unix(100, 0)
	for _, c := range []struct {
		late time.Duration
		want time.Time
	}{
		{-time.Millisecond, sched.Add(-time.Millisecond)}, // early: actual
		{0, sched},
		{DefaultSlack, sched.Add(DefaultSlack)}, // at the slack: still actual
		{DefaultSlack + 1, sched},               // beyond: scheduled
		{time.Second, sched},
	} {
		if got := ChargeFrom(sched, sched.Add(c.late), DefaultSlack); !got.Equal(c.want) {
			t.Errorf("late %v: charged from %v, want %v", c.late, got, c.want)
		}
	}
}
