package consume

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// offsetKind is where, per partition, consuming starts.
type offsetKind int

const (
	fromBeginning offsetKind = iota
	fromEnd
	fromExact     // an absolute offset
	fromEndMinus  // n records before the end
	fromTimestamp // first record at or after a time
)

type offsetSpec struct {
	kind offsetKind
	n    int64 // the offset, the count before the end, or unix milliseconds
}

// parseOffset reads --offset: beginning, end, N, -N or @T where T is unix
// milliseconds or an RFC 3339 time.
func parseOffset(s string) (offsetSpec, error) {
	bad := func() (offsetSpec, error) {
		return offsetSpec{}, fmt.Errorf("--offset %q is not beginning, end, N, -N or @TIME (unix milliseconds or RFC 3339)", s)
	}
	switch s {
	case "beginning", "start", "oldest":
		return offsetSpec{kind: fromBeginning}, nil
	case "end", "newest":
		return offsetSpec{kind: fromEnd}, nil
	}
	if t, ok := strings.CutPrefix(s, "@"); ok {
		if ms, err := strconv.ParseInt(t, 10, 64); err == nil {
			if ms < 0 {
				return bad()
			}
			return offsetSpec{kind: fromTimestamp, n: ms}, nil
		}
		ts, err := time.Parse(time.RFC3339Nano, t)
		if err != nil || ts.UnixMilli() < 0 {
			return bad()
		}
		return offsetSpec{kind: fromTimestamp, n: ts.UnixMilli()}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || s == "-0" {
		return bad()
	}
	if strings.HasPrefix(s, "-") {
		return offsetSpec{kind: fromEndMinus, n: -n}, nil
	}
	if strings.HasPrefix(s, "+") {
		return bad()
	}
	return offsetSpec{kind: fromExact, n: n}, nil
}

// partitionBounds is what the broker reported for a partition when the
// command started.
type partitionBounds struct {
	logStart, highWatermark int64
	// atTime is the first offset at or after the --offset timestamp; only
	// set for @T.
	atTime int64
}

// start resolves the spec to an offset within [logStart, highWatermark]:
// consuming never starts outside the log, so the stop condition (reaching
// the high watermark) is always well defined.
func (s offsetSpec) start(b partitionBounds) int64 {
	var o int64
	switch s.kind {
	case fromBeginning:
		o = b.logStart
	case fromEnd:
		o = b.highWatermark
	case fromExact:
		o = s.n
	case fromEndMinus:
		o = b.highWatermark - s.n
	case fromTimestamp:
		o = b.atTime
		if o < 0 {
			o = b.highWatermark
		}
	}
	return min(max(o, b.logStart), b.highWatermark)
}
