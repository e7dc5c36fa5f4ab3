package chaos

import (
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestPlanFaults(t *testing.T) {
	for n := 0; n <= 30; n++ {
		for seed := uint64(0); seed < 20; seed++ {
			plan := PlanFaults(rand.New(rand.NewPCG(seed, 1)), n)
			if len(plan) != n {
				t.Fatalf("n=%d: plan of %d", n, len(plan))
			}
			if n == 0 {
				continue
			}
			killAll := slices.Index(plan, FaultKillAll)
			if killAll < 0 || slices.Index(plan[killAll+1:], FaultKillAll) >= 0 {
				t.Fatalf("n=%d: want exactly one kill-all in %v", n, plan)
			}
			if n >= 3 && killAll >= (2*n+2)/3 {
				t.Fatalf("n=%d: kill-all at %d, past the first two thirds", n, killAll)
			}
			if n > len(RegularFaults()) {
				for _, k := range RegularFaults() {
					if !slices.Contains(plan, k) {
						t.Fatalf("n=%d: %s missing from %v", n, k, plan)
					}
				}
			}
		}
	}
	a := PlanFaults(rand.New(rand.NewPCG(7, 7)), 9)
	b := PlanFaults(rand.New(rand.NewPCG(7, 7)), 9)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different plans: %v %v", a, b)
	}
}

func TestRequiredFaults(t *testing.T) {
	for _, tc := range []struct {
		duration, interval time.Duration
		want               int
	}{
		{3 * time.Minute, 20 * time.Second, 6},
		{30 * time.Minute, 20 * time.Second, 60},
		{time.Minute, 20 * time.Second, 2},
		{10 * time.Second, 20 * time.Second, 1},
		{time.Minute, 0, 1},
	} {
		if got := RequiredFaults(tc.duration, tc.interval); got != tc.want {
			t.Errorf("RequiredFaults(%v, %v) = %d, want %d", tc.duration, tc.interval, got, tc.want)
		}
	}
}

func TestClassifyMeta(t *testing.T) {
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	readErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset")}
	for _, tc := range []struct {
		kind MetaKind
		err  error
		want MetaResult
	}{
		{MetaCreate, nil, MetaOK},
		{MetaDelete, nil, MetaOK},
		{MetaCreate, kerr.TopicAlreadyExists, MetaAlreadyExists},
		{MetaDelete, kerr.UnknownTopicOrPartition, MetaUnknownTopic},
		// The same codes from the other operation say nothing definite.
		{MetaDelete, kerr.TopicAlreadyExists, MetaAmbiguous},
		{MetaCreate, kerr.UnknownTopicOrPartition, MetaAmbiguous},
		{MetaCreate, kerr.InvalidReplicationFactor, MetaFailed},
		{MetaCreate, dialErr, MetaFailed},
		{MetaCreate, readErr, MetaAmbiguous},
		{MetaCreate, kerr.RequestTimedOut, MetaAmbiguous},
		{MetaDelete, kerr.NotController, MetaAmbiguous},
		{MetaCreate, errors.New("context deadline exceeded"), MetaAmbiguous},
	} {
		if got := classifyMeta(tc.kind, tc.err); got != tc.want {
			t.Errorf("%s with %v: %s, want %s", tc.kind, tc.err, got, tc.want)
		}
	}
}
