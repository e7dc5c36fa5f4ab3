package consume

import (
	"testing"
	"time"
)

func TestParseOffset(t *testing.T) {
	rfc := time.Date(2024, 5, 1, 12, 0, 0, 250e6, time.UTC)
	for _, tc := range []struct {
		in   string
		want offsetSpec
		err  bool
	}{
		{in: "beginning", want: offsetSpec{kind: fromBeginning}},
		{in: "end", want: offsetSpec{kind: fromEnd}},
		{in: "0", want: offsetSpec{kind: fromExact, n: 0}},
		{in: "42", want: offsetSpec{kind: fromExact, n: 42}},
		{in: "-5", want: offsetSpec{kind: fromEndMinus, n: 5}},
		{in: "@1700000000000", want: offsetSpec{kind: fromTimestamp, n: 1700000000000}},
		{in: "@2024-05-01T12:00:00.25Z", want: offsetSpec{kind: fromTimestamp, n: rfc.UnixMilli()}},
		{in: "@2024-05-01T14:00:00.25+02:00", want: offsetSpec{kind: fromTimestamp, n: rfc.UnixMilli()}},
		{in: "", err: true},
		{in: "-0", err: true},
		{in: "+3", err: true},
		{in: "@", err: true},
		{in: "@-1", err: true},
		{in: "@yesterday", err: true},
		{in: "1.5", err: true},
		{in: "begin", err: true},
	} {
		got, err := parseOffset(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("parseOffset(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseOffset(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestOffsetStartIsClamped(t *testing.T) {
	b := partitionBounds{logStart: 10, highWatermark: 20, atTime: 15}
	for _, tc := range []struct {
		spec offsetSpec
		want int64
	}{
		{offsetSpec{kind: fromBeginning}, 10},
		{offsetSpec{kind: fromEnd}, 20},
		{offsetSpec{kind: fromExact, n: 12}, 12},
		{offsetSpec{kind: fromExact, n: 3}, 10},
		{offsetSpec{kind: fromExact, n: 99}, 20},
		{offsetSpec{kind: fromEndMinus, n: 4}, 16},
		{offsetSpec{kind: fromEndMinus, n: 400}, 10},
		{offsetSpec{kind: fromTimestamp, n: 1}, 15},
	} {
		if got := tc.spec.start(b); got != tc.want {
			t.Errorf("%+v.start(%+v) = %d, want %d", tc.spec, b, got, tc.want)
		}
	}
	if got := (offsetSpec{kind: fromTimestamp}).start(partitionBounds{logStart: 0, highWatermark: 7, atTime: -1}); got != 7 {
		t.Errorf("timestamp after every record: start %d, want the high watermark 7", got)
	}
}
