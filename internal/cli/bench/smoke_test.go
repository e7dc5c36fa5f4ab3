package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/weir-dev/weir/internal/cli/bench/measure"
	"github.com/weir-dev/weir/internal/server/servertest"
)

// runJSON runs `bench args... --format json` and decodes its result.
func runJSON(t *testing.T, args ...string) measure.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := New()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append(args, "--format", "json"))
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("bench %v: %v\n%s%s", args, err, out.String(), errOut.String())
	}
	var r measure.Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("bench %v output %q: %v", args, out.String(), err)
	}
	return r
}

// TestSmoke runs each verb briefly against an in-process broker. It checks
// only that records moved, never how fast.
func TestSmoke(t *testing.T) {
	n := servertest.Start(t, nil)
	short := []string{"--brokers", n.Addr(), "--duration", "200ms", "--warmup", "0s"}

	p := runJSON(t, append([]string{"produce", "--topic", "smoke", "--partitions", "2", "--record-size", "100",
		"--topic-config", "retention.ms=3600000"}, short...)...)
	if p.Records <= 0 || p.Errors != 0 || p.Ack == nil || p.Ack.Count == 0 {
		t.Fatalf("produce: %+v", p)
	}

	c := runJSON(t, "consume", "--brokers", n.Addr(), "--topic", "smoke", "--consumers", "2")
	if c.Records <= 0 || c.Bytes != c.Records*100 {
		t.Fatalf("consume: %+v", c)
	}
	c = runJSON(t, "consume", "--brokers", n.Addr(), "--topic", "smoke", "--count", "1")
	if c.Records < 1 {
		t.Fatalf("consume --count 1: %+v", c)
	}

	e := runJSON(t, append([]string{"e2e", "--topic", "smoke-e2e", "--rate", "2000", "--linger", "0"}, short...)...)
	if e.Records <= 0 || e.E2E == nil || e.E2E.Count == 0 {
		t.Fatalf("e2e: %+v", e)
	}
}
