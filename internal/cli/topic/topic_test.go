package topic_test

import (
	"encoding/json"
	"strings"
	"testing"

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

type listed struct {
	Name       string `json:"name"`
	Partitions int    `json:"partitions"`
	Replicas   int    `json:"replicas"`
}

type described struct {
	Name       string `json:"name"`
	Replicas   int    `json:"replicas"`
	Partitions []struct {
		Partition      int32   `json:"partition"`
		Leader         int32   `json:"leader"`
		Replicas       []int32 `json:"replicas"`
		LogStartOffset int64   `json:"log_start_offset"`
		HighWatermark  int64   `json:"high_watermark"`
	} `json:"partitions"`
	Configs []struct {
		Name   string  `json:"name"`
		Value  *string `json:"value"`
		Source string  `json:"source"`
	} `json:"configs"`
}

func (d described) config(t *testing.T, name string) (string, string) {
	t.Helper()
	for _, c := range d.Configs {
		if c.Name == name {
			if c.Value == nil {
				return "", c.Source
			}
			return *c.Value, c.Source
		}
	}
	t.Fatalf("topic %s has no config %s", d.Name, name)
	return "", ""
}

func TestTopicLifecycle(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()

	r := clitest.MustRun(t, "", "topic", "create", "orders", "-p", "3", "-r", "1", b,
		"--retention", "7d", "--retention-bytes", "1000000", "--segment-bytes", "1048576", "--cleanup-policy", "delete",
		"-c", "max.message.bytes=2000000")
	want := "TOPIC   PARTITIONS  REPLICAS  STATUS\norders  3           1         created\n"
	if r.Stdout != want {
		t.Errorf("create text output:\n%s\nwant:\n%s", r.Stdout, want)
	}
	r = clitest.MustRun(t, "", "topic", "create", "audit", "--format", "json", b)
	if want := `{"dry_run":false,"topics":[{"name":"audit","partitions":1,"replicas":1}]}` + "\n"; r.Stdout != want {
		t.Errorf("create json output %q, want %q", r.Stdout, want)
	}

	r = clitest.MustRun(t, "", "topic", "list", b)
	want = "NAME    PARTITIONS  REPLICAS\naudit   1           1\norders  3           1\n"
	if r.Stdout != want {
		t.Errorf("list text output:\n%s\nwant:\n%s", r.Stdout, want)
	}
	r = clitest.MustRun(t, "", "topic", "list", "--format", "json", b)
	got := decode[[]listed](t, r.Stdout)
	if len(got) != 2 || got[0] != (listed{"audit", 1, 1}) || got[1] != (listed{"orders", 3, 1}) {
		t.Errorf("list json: %+v", got)
	}

	r = clitest.MustRun(t, "", "topic", "describe", "orders", "--format", "json", b)
	d := decode[described](t, r.Stdout)
	if d.Name != "orders" || d.Replicas != 1 || len(d.Partitions) != 3 {
		t.Fatalf("describe json: %+v", d)
	}
	for i, p := range d.Partitions {
		if p.Partition != int32(i) || p.Leader != 0 || len(p.Replicas) != 1 || p.LogStartOffset != 0 || p.HighWatermark != 0 {
			t.Errorf("partition %d: %+v", i, p)
		}
	}
	for name, want := range map[string][2]string{
		"retention.ms":      {"604800000", "topic"},
		"retention.bytes":   {"1000000", "topic"},
		"segment.bytes":     {"1048576", "topic"},
		"cleanup.policy":    {"delete", "topic"},
		"max.message.bytes": {"2000000", "topic"},
		"segment.ms":        {"604800000", "default"},
	} {
		if v, src := d.config(t, name); v != want[0] || src != want[1] {
			t.Errorf("config %s = %s (%s), want %s (%s)", name, v, src, want[0], want[1])
		}
	}
	r = clitest.MustRun(t, "", "topic", "describe", "orders", b)
	for _, line := range []string{
		"NAME        orders\n",
		"PARTITIONS  3\n",
		"PARTITION  LEADER  REPLICAS  LOG-START-OFFSET  HIGH-WATERMARK\n0          0       [0]       0                 0\n",
		"retention.ms                     604800000            topic\n",
		"segment.ms                       604800000            default\n",
	} {
		if !strings.Contains(r.Stdout, line) {
			t.Errorf("describe text output lacks %q:\n%s", line, r.Stdout)
		}
	}

	r = clitest.MustRun(t, "", "topic", "alter-config", "orders", "--set", "retention.ms=60000", "--set", "flush.messages=10", "--delete", "retention.bytes", b)
	want = "topic orders: altered\nCONFIG           CHANGE\nretention.ms     set to 60000\nflush.messages   set to 10\nretention.bytes  removed (back to default)\n"
	if r.Stdout != want {
		t.Errorf("alter-config text output:\n%s\nwant:\n%s", r.Stdout, want)
	}
	r = clitest.MustRun(t, "", "topic", "alter-config", "orders", "--set", "segment.ms=1000", "--dry-run", "--format", "json", b)
	if want := `{"topic":"orders","dry_run":true,"set":[{"key":"segment.ms","value":"1000"}],"deleted":[]}` + "\n"; r.Stdout != want {
		t.Errorf("alter-config json output %q, want %q", r.Stdout, want)
	}
	d = decode[described](t, clitest.MustRun(t, "", "topic", "describe", "orders", "--format=json", b).Stdout)
	for name, want := range map[string][2]string{
		"retention.ms":    {"60000", "topic"},
		"flush.messages":  {"10", "topic"},
		"retention.bytes": {"-1", "default"},
		"segment.ms":      {"604800000", "default"}, // the dry run changed nothing
	} {
		if v, src := d.config(t, name); v != want[0] || src != want[1] {
			t.Errorf("after alter: config %s = %s (%s), want %s (%s)", name, v, src, want[0], want[1])
		}
	}

	r = clitest.MustRun(t, "", "topic", "add-partitions", "orders", "--num", "2", b)
	want = "TOPIC   PARTITIONS-BEFORE  PARTITIONS  STATUS\norders  3                  5           added\n"
	if r.Stdout != want {
		t.Errorf("add-partitions output:\n%s\nwant:\n%s", r.Stdout, want)
	}
	d = decode[described](t, clitest.MustRun(t, "", "topic", "describe", "orders", "--format=json", b).Stdout)
	if len(d.Partitions) != 5 {
		t.Errorf("after add-partitions: %d partitions, want 5", len(d.Partitions))
	}

	r = clitest.MustRun(t, "", "topic", "delete", "orders", b)
	if want := "TOPIC   STATUS\norders  deleted\n"; r.Stdout != want {
		t.Errorf("delete text output %q, want %q", r.Stdout, want)
	}
	r = clitest.MustRun(t, "", "topic", "delete", "audit", "--format", "json", b)
	if want := `{"deleted":["audit"]}` + "\n"; r.Stdout != want {
		t.Errorf("delete json output %q, want %q", r.Stdout, want)
	}
	r = clitest.MustRun(t, "", "topic", "list", b, "--format", "json")
	if r.Stdout != "[]\n" {
		t.Errorf("list after delete: %q", r.Stdout)
	}
	if r = clitest.MustRun(t, "", "topic", "list", b); r.Stdout != "NAME  PARTITIONS  REPLICAS\n" {
		t.Errorf("empty list text: %q", r.Stdout)
	}
}

func TestTopicErrors(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	clitest.MustRun(t, "", "topic", "create", "exists", b)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"topic", "create", "bad", "-c", "retention.ms=soon"}, `weir: create topic "bad": INVALID_CONFIG: invalid config: retention.ms`},
		{[]string{"topic", "create", "bad", "-c", "no.such.config=1"}, `weir: create topic "bad": INVALID_CONFIG: invalid config: unknown topic config "no.such.config"`},
		{[]string{"topic", "create", "bad", "-r", "3"}, `weir: create topic "bad": INVALID_REPLICATION_FACTOR: `},
		{[]string{"topic", "create", "exists"}, `weir: create topic "exists": TOPIC_ALREADY_EXISTS`},
		{[]string{"topic", "create", "x", "x"}, `weir: topic "x" is given more than once`},
		{[]string{"topic", "create", "x", "-c", "retention.ms=1", "--retention", "1h"}, `weir: config retention.ms is given both with --retention and --config`},
		{[]string{"topic", "create", "x", "--retention", "forever"}, `weir: --retention "forever" is not a duration`},
		{[]string{"topic", "create", "x", "--cleanup-policy", "shred"}, `weir: --cleanup-policy must be delete, compact or compact,delete`},
		{[]string{"topic", "create", "x", "-c", "novalue"}, `weir: --config "novalue" is not key=value`},
		{[]string{"topic", "describe", "nope"}, `weir: topic "nope" does not exist`},
		{[]string{"topic", "delete", "nope"}, `weir: topic "nope" does not exist`},
		{[]string{"topic", "alter-config", "nope", "--set", "retention.ms=1"}, `weir: topic "nope" does not exist`},
		{[]string{"topic", "alter-config", "exists", "--set", "retention.ms=x"}, `weir: alter configs of "exists": INVALID_CONFIG: invalid config: retention.ms`},
		{[]string{"topic", "alter-config", "exists"}, `weir: nothing to change`},
		{[]string{"topic", "add-partitions", "nope", "--num", "1"}, `weir: topic "nope" does not exist`},
		{[]string{"topic", "add-partitions", "exists"}, `weir: --num must be at least 1`},
		{[]string{"topic", "list", "--format", "yaml"}, `weir: --format must be text or json, not "yaml"`},
		{[]string{"topic", "describe"}, `weir: topic describe takes one topic NAME (got 0 arguments; see --help)`},
		{[]string{"topic", "frobnicate"}, `weir: unknown command "frobnicate" for "weir topic"`},
	} {
		got := clitest.Fails(t, "", append(tc.args, b)...)
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("weir %s:\n got %s\nwant %s...", strings.Join(tc.args, " "), got, tc.want)
		}
	}
	// One failure among several topics does not hide the others' success.
	r := clitest.Run(t, "", "topic", "delete", "exists", "nope", b)
	if r.Code != 1 || r.Stdout != "TOPIC   STATUS\nexists  deleted\n" || r.Stderr != "weir: topic \"nope\" does not exist\n" {
		t.Errorf("partial delete: %+v", r)
	}
	// Nothing was created by the failed attempts.
	if r := clitest.MustRun(t, "", "topic", "list", b, "--format", "json"); r.Stdout != "[]\n" {
		t.Errorf("topics after failures: %s", r.Stdout)
	}
}

func TestCreateDryRun(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	r := clitest.MustRun(t, "", "topic", "create", "maybe", "--dry-run", b)
	if want := "TOPIC  PARTITIONS  REPLICAS  STATUS\nmaybe  1           1         valid (dry run, not created)\n"; r.Stdout != want {
		t.Errorf("dry run output:\n%s\nwant:\n%s", r.Stdout, want)
	}
	r = clitest.MustRun(t, "", "topic", "create", "maybe", "-p", "4", "--dry-run", "--format", "json", b)
	if want := `{"dry_run":true,"topics":[{"name":"maybe","partitions":4,"replicas":1}]}` + "\n"; r.Stdout != want {
		t.Errorf("dry run json %q, want %q", r.Stdout, want)
	}
	got := clitest.Fails(t, "", "topic", "create", "maybe", "--dry-run", "-c", "segment.bytes=tiny", b)
	if !strings.HasPrefix(got, `weir: create topic "maybe": INVALID_CONFIG: `) {
		t.Errorf("invalid dry run: %s", got)
	}
	if r := clitest.MustRun(t, "", "topic", "list", b, "--format", "json"); r.Stdout != "[]\n" {
		t.Errorf("dry run created a topic: %s", r.Stdout)
	}
}
