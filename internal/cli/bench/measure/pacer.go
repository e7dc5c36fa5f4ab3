package measure

import "time"

// DefaultSlack is how far a send may fall behind its schedule before its
// latency is charged from the scheduled time rather than the actual one.
// Sleeps on the measured machine overshoot by about 1.1 ms, so a pacer
// sending every 200 µs routinely runs a millisecond late in small bursts;
// 2 ms keeps that jitter out while still catching a stalled sender.
const DefaultSlack = 2 * time.Millisecond

// Pacer spreads sends evenly at a fixed rate from a start time. It only
// computes times; the caller sleeps, which keeps it deterministic to test.
type Pacer struct {
	start    time.Time
	interval float64 // nanoseconds between sends
}

// NewPacer paces perSecond sends a second from start; perSecond must be > 0.
func NewPacer(start time.Time, perSecond float64) Pacer {
	return Pacer{start: start, interval: float64(time.Second) / perSecond}
}

// At is when send i (counting from 0) is due.
func (p Pacer) At(i int64) time.Time {
	return p.start.Add(time.Duration(float64(i) * p.interval))
}

// ChargeFrom is the time a send's latency is measured from. A send that
// runs more than slack behind schedule is charged from when it was due, so
// that a sender held up by a slow server does not hide the wait it
// suffered (coordinated omission); a send on time or slightly late is
// charged from when it actually went out.
func ChargeFrom(scheduled, actual time.Time, slack time.Duration) time.Time {
	if actual.Sub(scheduled) > slack {
		return scheduled
	}
	return actual
}
