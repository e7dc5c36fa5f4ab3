package consume_test

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/internal/cli/clitest"
	"github.com/weir-dev/weir/internal/server/servertest"
)

type groupState struct {
	State    string            `json:"state"`
	Members  []json.RawMessage `json:"members"`
	TotalLag int64             `json:"total_lag"`
	Offsets  []struct {
		CommittedOffset int64 `json:"committed_offset"`
	} `json:"offsets"`
}

// committed is how many records the group committed, over all partitions.
func (g groupState) committed() int64 {
	var sum int64
	for _, o := range g.Offsets {
		sum += o.CommittedOffset
	}
	return sum
}

func describeGroup(t *testing.T, b, group string) groupState {
	t.Helper()
	var ds []groupState
	out := clitest.MustRun(t, "", "group", "describe", group, "--format", "json", b).Stdout
	if err := json.Unmarshal([]byte(out), &ds); err != nil || len(ds) != 1 {
		t.Fatalf("describe %s: %q: %v", group, out, err)
	}
	return ds[0]
}

func TestGroupConsume(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	clitest.MustRun(t, "", "topic", "create", "gt", "-p", "3", b)
	var all []string
	for p, count := range []int{5, 3, 2} {
		var in strings.Builder
		for i := range count {
			v := strconv.Itoa(p) + ":" + strconv.Itoa(i)
			in.WriteString("v" + v + "\n")
			all = append(all, v+":v"+v)
		}
		clitest.MustRun(t, in.String(), "produce", "gt", "--partition", strconv.Itoa(p), b)
	}

	// Two runs of the same group read every record once between them,
	// although each fetches more than it prints.
	tmpl := `%p:%o:%v\n`
	first := clitest.MustRun(t, "", "consume", "gt", "--group", "c", "-n", "4", "--format", tmpl, b).Stdout
	if strings.Count(first, "\n") != 4 {
		t.Fatalf("first run printed %q, want 4 records", first)
	}
	if g := describeGroup(t, b, "c"); g.State != "Empty" || len(g.Members) != 0 || g.committed() != 4 {
		t.Errorf("after the first run the group is %+v, want Empty (left) with 4 records committed", g)
	}
	second := clitest.MustRun(t, "", "consume", "gt", "--group", "c", "-n", "6", "--format", tmpl, b).Stdout
	got := strings.Split(strings.TrimSuffix(first+second, "\n"), "\n")
	slices.Sort(got)
	if strings.Join(got, "\n") != strings.Join(all, "\n") {
		t.Errorf("two runs read:\n%s\nwant each record once:\n%s", strings.Join(got, "\n"), strings.Join(all, "\n"))
	}
	if g := describeGroup(t, b, "c"); g.State != "Empty" || g.committed() != 10 || g.TotalLag != 0 {
		t.Errorf("after the second run: %+v", g)
	}

	// A member follows: with everything read, it waits for the next record.
	done := make(chan clitest.Result, 1)
	go func() { done <- clitest.Run(t, "", "consume", "gt", "--group", "c", "-n", "1", b) }()
	clitest.MustRun(t, "late\n", "produce", "gt", b)
	if r := <-done; r.Code != 0 || r.Stdout != "late\n" {
		t.Errorf("following member: %+v", r)
	}

	// --offset end: a new group starts after what is already there. The
	// member may join before or after any of these records, so records are
	// produced until it prints one.
	done = make(chan clitest.Result, 1)
	go func() {
		done <- clitest.Run(t, "", "consume", "gt", "--group", "fresh", "--offset", "end", "-n", "1", b)
	}()
	var r clitest.Result
	for i := 0; ; i++ {
		clitest.MustRun(t, "new"+strconv.Itoa(i)+"\n", "produce", "gt", b)
		select {
		case r = <-done:
		case <-time.After(100 * time.Millisecond):
			continue
		}
		break
	}
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "new") || strings.Count(r.Stdout, "\n") != 1 {
		t.Errorf("--offset end: %+v", r)
	}
}

func TestGroupConsumeErrors(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	clitest.MustRun(t, "", "topic", "create", "two", "-p", "2", b)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"two", "--group", "g", "-p", "0"}, "weir: --partition cannot be used with --group: the group assigns the partitions"},
		{[]string{"two", "--group", "g", "--offset", "3"}, `weir: --offset "3" cannot be used with --group: give beginning or end`},
		{[]string{"two", "--group", "g", "--offset", "-1"}, `weir: --offset "-1" cannot be used with --group`},
		{[]string{"two", "--group", "g", "--offset", "@0"}, `weir: --offset "@0" cannot be used with --group`},
		{[]string{"nope", "--group", "g"}, `weir: topic "nope" does not exist`},
	} {
		got := clitest.Fails(t, "", append(append([]string{"consume"}, tc.args...), b)...)
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("consume %v:\n got %s\nwant %s...", tc.args, got, tc.want)
		}
	}
	// None of these joined the group.
	if out := clitest.MustRun(t, "", "group", "list", "--format", "json", b).Stdout; out != "[]\n" {
		t.Errorf("groups after the failures: %s", out)
	}
}
