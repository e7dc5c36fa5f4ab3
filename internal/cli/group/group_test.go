package group_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/cli/clitest"
	"github.com/weir-dev/weir/internal/server/servertest"
)

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if strings.Count(s, "\n") != 1 {
		t.Fatalf("JSON output is not one line: %q", s)
	}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

type described struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	Protocol     string `json:"protocol"`
	Members      []struct {
		MemberID string `json:"member_id"`
		ClientID string `json:"client_id"`
		Host     string `json:"host"`
		Assigned []struct {
			Topic      string  `json:"topic"`
			Partitions []int32 `json:"partitions"`
		} `json:"assigned"`
	} `json:"members"`
	TotalLag int64 `json:"total_lag"`
	Offsets  []struct {
		Topic           string  `json:"topic"`
		Partition       int32   `json:"partition"`
		CommittedOffset *int64  `json:"committed_offset"`
		LogEndOffset    *int64  `json:"log_end_offset"`
		Lag             *int64  `json:"lag"`
		MemberID        *string `json:"member_id"`
	} `json:"offsets"`
}

func describe(t *testing.T, b, group string) described {
	t.Helper()
	ds := decode[[]described](t, clitest.MustRun(t, "", "group", "describe", group, "--format", "json", b).Stdout)
	if len(ds) != 1 || ds[0].Group != group {
		t.Fatalf("describe %s: %+v", group, ds)
	}
	return ds[0]
}

// committed is the group's committed offset of topic[partition], -1 for
// none.
func (d described) committed(topic string, partition int32) int64 {
	for _, o := range d.Offsets {
		if o.Topic == topic && o.Partition == partition && o.CommittedOffset != nil {
			return *o.CommittedOffset
		}
	}
	return -1
}

// waitFor polls the group's description until ok accepts it.
func waitFor(t *testing.T, b, group string, ok func(described) bool) described {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := decode[[]described](t, clitest.MustRun(t, "", "group", "describe", group, "--format", "json", b).Stdout)
		if len(d) == 1 && ok(d[0]) {
			return d[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s never reached the expected state: %+v", group, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lines(prefix string, n int) string {
	var sb strings.Builder
	for i := range n {
		sb.WriteString(prefix + strconv.Itoa(i) + "\n")
	}
	return sb.String()
}

func TestGroupLifecycle(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	if r := clitest.MustRun(t, "", "group", "list", b); r.Stdout != "GROUP  STATE  PROTOCOL-TYPE  MEMBERS\n" {
		t.Errorf("empty list: %q", r.Stdout)
	}
	if r := clitest.MustRun(t, "", "group", "list", "--format", "json", b); r.Stdout != "[]\n" {
		t.Errorf("empty list json: %q", r.Stdout)
	}

	clitest.MustRun(t, "", "topic", "create", "events", b)
	clitest.MustRun(t, lines("e", 10), "produce", "events", b)
	// Consuming part of the topic with a group commits what was printed.
	if out := clitest.MustRun(t, "", "consume", "events", "--group", "g1", "-n", "4", b).Stdout; out != lines("e", 4) {
		t.Fatalf("consume --group -n 4: %q", out)
	}

	r := clitest.MustRun(t, "", "group", "describe", "g1", b)
	want := "GROUP          g1\nSTATE          Empty\nPROTOCOL-TYPE  consumer\nPROTOCOL       -\nMEMBERS        0\nTOTAL-LAG      6\n\n" +
		"MEMBER-ID  CLIENT-ID  HOST  ASSIGNED\n\n" +
		"TOPIC   PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  MEMBER-ID\nevents  0          4               10              6    -\n"
	if r.Stdout != want {
		t.Errorf("describe text:\n%s\nwant:\n%s", r.Stdout, want)
	}
	if r := clitest.MustRun(t, "", "group", "list", b); r.Stdout != "GROUP  STATE  PROTOCOL-TYPE  MEMBERS\ng1     Empty  consumer       0\n" {
		t.Errorf("list: %q", r.Stdout)
	}

	// A member keeps the group active.
	keeper, err := kgo.NewClient(kgo.SeedBrokers(n.Addr()), kgo.ClientID("keeper"),
		kgo.ConsumerGroup("g1"), kgo.ConsumeTopics("events"), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	defer keeper.Close()
	d := waitFor(t, b, "g1", func(d described) bool { return d.State == "Stable" && len(d.Members) == 1 })
	m := d.Members[0]
	if m.ClientID != "keeper" || m.Host != "/127.0.0.1" || len(m.Assigned) != 1 || m.Assigned[0].Topic != "events" || len(m.Assigned[0].Partitions) != 1 || m.Assigned[0].Partitions[0] != 0 {
		t.Errorf("member: %+v", m)
	}
	if d.ProtocolType != "consumer" || d.Protocol == "" || d.TotalLag != 6 || len(d.Offsets) != 1 {
		t.Fatalf("active group: %+v", d)
	}
	if o := d.Offsets[0]; o.Topic != "events" || o.Partition != 0 || *o.CommittedOffset != 4 || *o.LogEndOffset != 10 || *o.Lag != 6 || o.MemberID == nil || *o.MemberID != m.MemberID {
		t.Errorf("offsets of the active group: %+v", o)
	}
	r = clitest.MustRun(t, "", "group", "describe", "g1", b)
	for _, line := range []string{
		"STATE          Stable\n",
		m.MemberID + "  keeper     /127.0.0.1  events:0\n",
		"events  0          4               10              6    " + m.MemberID + "\n",
	} {
		if !strings.Contains(r.Stdout, line) {
			t.Errorf("describe of the active group lacks %q:\n%s", line, r.Stdout)
		}
	}
	if r := clitest.MustRun(t, "", "group", "list", b); r.Stdout != "GROUP  STATE   PROTOCOL-TYPE  MEMBERS\ng1     Stable  consumer       1\n" {
		t.Errorf("list with a member: %q", r.Stdout)
	}
	for _, args := range [][]string{
		{"group", "reset-offsets", "g1", "--topic", "events", "--to-earliest"},
		{"group", "reset-offsets", "g1", "--topic", "events", "--to-earliest", "--execute"},
	} {
		got := clitest.Fails(t, "", append(args, b)...)
		if want := `weir: cannot reset offsets of group "g1": it has 1 active member (state Stable); stop its consumers first`; got != want {
			t.Errorf("reset while active:\n got %s\nwant %s", got, want)
		}
	}
	got := clitest.Fails(t, "", "group", "delete", "g1", b)
	if want := `weir: delete group "g1": NON_EMPTY_GROUP: it has 1 active member (state Stable); stop its consumers first`; got != want {
		t.Errorf("delete while active:\n got %s\nwant %s", got, want)
	}
	if c := describe(t, b, "g1").committed("events", 0); c != 4 {
		t.Errorf("refused reset changed the committed offset to %d", c)
	}

	keeper.Close() // leaves the group
	waitFor(t, b, "g1", func(d described) bool { return d.State == "Empty" })

	// A dry run prints the plan and changes nothing.
	r = clitest.MustRun(t, "", "group", "reset-offsets", "g1", "--topic", "events", "--to-offset", "2", b)
	want = "group g1: dry run, nothing committed (add --execute to commit these offsets)\nTOPIC   PARTITION  CURRENT-OFFSET  NEW-OFFSET\nevents  0          4               2\n"
	if r.Stdout != want {
		t.Errorf("dry run:\n%s\nwant:\n%s", r.Stdout, want)
	}
	if c := describe(t, b, "g1").committed("events", 0); c != 4 {
		t.Errorf("dry run changed the committed offset to %d", c)
	}
	r = clitest.MustRun(t, "", "group", "reset-offsets", "g1", "--topic", "events", "--to-offset", "2", "--execute", "--format", "json", b)
	if want := `{"group":"g1","executed":true,"offsets":[{"topic":"events","partition":0,"current_offset":4,"new_offset":2}]}` + "\n"; r.Stdout != want {
		t.Errorf("execute json %q, want %q", r.Stdout, want)
	}
	if d := describe(t, b, "g1"); d.committed("events", 0) != 2 || d.TotalLag != 8 {
		t.Errorf("after reset: %+v", d)
	}
	// The group goes on from the new offset.
	if out := clitest.MustRun(t, "", "consume", "events", "--group", "g1", "-n", "1", b).Stdout; out != "e2\n" {
		t.Errorf("consume after reset: %q", out)
	}

	r = clitest.MustRun(t, "", "group", "delete", "g1", b)
	if want := "GROUP  STATUS\ng1     deleted\n"; r.Stdout != want {
		t.Errorf("delete: %q, want %q", r.Stdout, want)
	}
	for _, args := range [][]string{{"describe", "g1"}, {"delete", "g1"}} {
		if got := clitest.Fails(t, "", append([]string{"group"}, append(args, b)...)...); got != `weir: group "g1" does not exist` {
			t.Errorf("group %s after delete: %s", args[0], got)
		}
	}
	if r := clitest.MustRun(t, "", "group", "list", "--format", "json", b); r.Stdout != "[]\n" {
		t.Errorf("list after delete: %q", r.Stdout)
	}
	// A deleted group starts over: its committed offsets went with it.
	if out := clitest.MustRun(t, "", "consume", "events", "--group", "g1", "-n", "1", b).Stdout; out != "e0\n" {
		t.Errorf("consume after delete: %q", out)
	}
}

func TestResetOffsets(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	clitest.MustRun(t, "", "topic", "create", "t", "-p", "3", b)
	clitest.MustRun(t, lines("a", 6), "produce", "t", "--partition", "0", b)
	clitest.MustRun(t, lines("b", 4), "produce", "t", "--partition", "1", b)
	// Partition 2 stays empty.

	// Records with known timestamps, to reset by time.
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.Addr()), kgo.DefaultProduceTopic("timed"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for i := range 4 {
		r := &kgo.Record{Value: []byte{'v'}, Timestamp: base.Add(time.Duration(i) * time.Second)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// The group's starting point: 2 of partition 0, 3 of partition 1.
	adm := kadm.NewClient(cl)
	var start kadm.Offsets
	start.Add(kadm.Offset{Topic: "t", Partition: 0, At: 2, LeaderEpoch: -1})
	start.Add(kadm.Offset{Topic: "t", Partition: 1, At: 3, LeaderEpoch: -1})
	start.Add(kadm.Offset{Topic: "timed", Partition: 0, At: 0, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, "g", start); err != nil {
		t.Fatal(err)
	}

	type row struct {
		Topic         string `json:"topic"`
		Partition     int32  `json:"partition"`
		CurrentOffset *int64 `json:"current_offset"`
		NewOffset     int64  `json:"new_offset"`
	}
	plan := func(args ...string) string {
		t.Helper()
		res := decode[struct {
			Executed bool  `json:"executed"`
			Offsets  []row `json:"offsets"`
		}](t, clitest.MustRun(t, "", append([]string{"group", "reset-offsets", "g", "--format", "json", b}, args...)...).Stdout)
		var parts []string
		for _, o := range res.Offsets {
			cur := "-"
			if o.CurrentOffset != nil {
				cur = strconv.FormatInt(*o.CurrentOffset, 10)
			}
			parts = append(parts, o.Topic+"/"+strconv.Itoa(int(o.Partition))+":"+cur+">"+strconv.FormatInt(o.NewOffset, 10))
		}
		return strings.Join(parts, " ")
	}
	ms := strconv.FormatInt(base.Add(2*time.Second).UnixMilli(), 10)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--topic", "t", "--to-earliest"}, "t/0:2>0 t/1:3>0 t/2:->0"},
		{[]string{"--topic", "t", "--to-latest"}, "t/0:2>6 t/1:3>4 t/2:->0"},
		{[]string{"--topic", "t:1", "--to-offset", "1"}, "t/1:3>1"},
		{[]string{"--topic", "t:0,1", "--to-offset", "5"}, "t/0:2>5 t/1:3>4"}, // kept within the log
		{[]string{"--topic", "t:1", "--topic", "t:0", "--shift-by", "-1"}, "t/0:2>1 t/1:3>2"},
		{[]string{"--topic", "t:0,1", "--shift-by", "100"}, "t/0:2>6 t/1:3>4"},
		{[]string{"--topic", "t:0", "--shift-by", "-100"}, "t/0:2>0"},
		{[]string{"--all-topics", "--to-latest"}, "t/0:2>6 t/1:3>4 timed/0:0>4"},
		{[]string{"--topic", "timed", "--to-datetime", "0"}, "timed/0:0>0"},
		{[]string{"--topic", "timed", "--to-datetime", ms}, "timed/0:0>2"},
		{[]string{"--topic", "timed", "--to-datetime", "2024-05-01T12:00:01.5Z"}, "timed/0:0>2"},
		{[]string{"--topic", "timed", "--to-datetime", "2024-05-01T14:00:03+02:00"}, "timed/0:0>3"},
		{[]string{"--topic", "timed", "--to-datetime", "2099-01-01T00:00:00Z"}, "timed/0:0>4"},
		{[]string{"--topic", "timed", "--topic", "t:2", "--to-earliest"}, "t/2:->0 timed/0:0>0"},
	} {
		if got := plan(tc.args...); got != tc.want {
			t.Errorf("reset-offsets %v:\n got %s\nwant %s", tc.args, got, tc.want)
		}
	}
	// None of those dry runs committed anything.
	if got := plan("--all-topics", "--shift-by", "0"); got != "t/0:2>2 t/1:3>3 timed/0:0>0" {
		t.Errorf("after dry runs: %s", got)
	}
	r := clitest.MustRun(t, "", "group", "reset-offsets", "g", "--topic", "t", "--to-latest", "--execute", b)
	if want := "group g: offsets committed\nTOPIC  PARTITION  CURRENT-OFFSET  NEW-OFFSET\nt      0          2               6\nt      1          3               4\nt      2          -               0\n"; r.Stdout != want {
		t.Errorf("execute text:\n%s\nwant:\n%s", r.Stdout, want)
	}
	if got := plan("--all-topics", "--shift-by", "0"); got != "t/0:6>6 t/1:4>4 t/2:0>0 timed/0:0>0" {
		t.Errorf("after --execute: %s", got)
	}
	d := describe(t, b, "g")
	if d.TotalLag != 4 || d.committed("t", 2) != 0 {
		t.Errorf("describe after reset: %+v", d)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"g", "--topic", "t"}, "weir: give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime and --shift-by"},
		{[]string{"g", "--topic", "t", "--to-earliest", "--shift-by", "1"}, "weir: give exactly one of"},
		{[]string{"g", "--to-earliest"}, "weir: give the topics to reset with --topic T[:P,P...] or --all-topics"},
		{[]string{"g", "--topic", "t", "--all-topics", "--to-earliest"}, "weir: give either --topic or --all-topics, not both"},
		{[]string{"g", "--topic", "t:x", "--to-earliest"}, `weir: --topic "t:x": "x" is not a partition number`},
		{[]string{"g", "--topic", ":1", "--to-earliest"}, `weir: --topic ":1" has no topic name`},
		{[]string{"g", "--topic", "t", "--to-offset", "-1"}, "weir: --to-offset must be 0 or more, not -1"},
		{[]string{"g", "--topic", "t", "--to-datetime", "yesterday"}, `weir: --to-datetime "yesterday" is not unix milliseconds or an RFC 3339 time`},
		{[]string{"g", "--topic", "nope", "--to-earliest"}, `weir: topic "nope" does not exist`},
		{[]string{"g", "--topic", "t:7", "--to-earliest"}, `weir: topic "t" has no partition 7 (it has 3 partitions)`},
		{[]string{"fresh", "--topic", "t", "--shift-by", "1"}, `weir: cannot shift t[0]: group "fresh" has no committed offset for it`},
		{[]string{"fresh", "--all-topics", "--to-earliest"}, `weir: group "fresh" has no committed offsets for --all-topics to reset`},
		{[]string{}, "weir: group reset-offsets takes one GROUP (got 0 arguments; see --help)"},
	} {
		got := clitest.Fails(t, "", append(append([]string{"group", "reset-offsets"}, tc.args...), b)...)
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("reset-offsets %v:\n got %s\nwant %s...", tc.args, got, tc.want)
		}
	}
	// A group that does not exist yet can be given offsets, as in Kafka.
	clitest.MustRun(t, "", "group", "reset-offsets", "fresh", "--topic", "t:1", "--to-offset", "3", "--execute", b)
	// Partition 0 goes to its end so that b3 is the only record left to read:
	// with -n 1 the consumer takes whichever partition answers first.
	clitest.MustRun(t, "", "group", "reset-offsets", "fresh", "--topic", "t:0", "--to-latest", "--execute", b)
	if out := clitest.MustRun(t, "", "consume", "t", "--group", "fresh", "-n", "1", b).Stdout; out != "b3\n" {
		t.Errorf("consume from the reset offset: %q", out)
	}
}

func TestGroupErrors(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"describe", "nope"}, `weir: group "nope" does not exist`},
		{[]string{"delete", "nope"}, `weir: group "nope" does not exist`},
		{[]string{"describe", "a", "a"}, `weir: group "a" is given more than once`},
		{[]string{"delete"}, "weir: group delete takes one or more GROUPs (got 0 arguments; see --help)"},
		{[]string{"describe"}, "weir: group describe takes one or more GROUPs (got 0 arguments; see --help)"},
		{[]string{"list", "--format", "yaml"}, `weir: --format must be text or json, not "yaml"`},
		{[]string{"frobnicate"}, `weir: unknown command "frobnicate" for "weir group"`},
	} {
		got := clitest.Fails(t, "", append(append([]string{"group"}, tc.args...), b)...)
		if got != tc.want {
			t.Errorf("group %v:\n got %s\nwant %s", tc.args, got, tc.want)
		}
	}
	// One unknown group among several does not hide the others.
	clitest.MustRun(t, "", "topic", "create", "t", b)
	clitest.MustRun(t, "x\n", "produce", "t", b)
	clitest.MustRun(t, "", "consume", "t", "--group", "real", "-n", "1", b)
	r := clitest.Run(t, "", "group", "describe", "real", "nope", "--format", "json", b)
	if r.Code != 1 || r.Stderr != "weir: group \"nope\" does not exist\n" || !strings.HasPrefix(r.Stdout, `[{"group":"real",`) {
		t.Errorf("partial describe: %+v", r)
	}
	r = clitest.Run(t, "", "group", "delete", "nope", "real", b)
	if r.Code != 1 || r.Stdout != "GROUP  STATUS\nreal   deleted\n" || r.Stderr != "weir: group \"nope\" does not exist\n" {
		t.Errorf("partial delete: %+v", r)
	}
}
