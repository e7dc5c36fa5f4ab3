package consume_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/cli/clitest"
	"github.com/weir-dev/weir/internal/server/servertest"
)

type jsonRecord struct {
	Topic         string  `json:"topic"`
	Partition     int32   `json:"partition"`
	Offset        int64   `json:"offset"`
	Timestamp     int64   `json:"timestamp"`
	Key           *string `json:"key"`
	KeyEncoding   string  `json:"key_encoding"`
	Value         *string `json:"value"`
	ValueEncoding string  `json:"value_encoding"`
	Headers       []struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	} `json:"headers"`
}

func decodeLines(t *testing.T, out string) []jsonRecord {
	t.Helper()
	var recs []jsonRecord
	for _, line := range strings.SplitAfter(out, "\n") {
		if line == "" {
			continue
		}
		var r jsonRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("decode %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestRoundTrip(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	long := strings.Repeat("0123456789", 20_000) // 200 kB, past bufio.Scanner's limit
	input := "k1=v1\nk2=v=2 with = signs\nno separator\n=empty key\nk5=\n\nkey=ünïcödé\ttab\nbig=" + long + "\nlast=no newline"
	before := time.Now().UnixMilli()
	clitest.MustRun(t, input, "produce", "rt", "--key-separator", "=", "-H", "source=test", "-H", "expr=a=b", b)
	after := time.Now().UnixMilli()

	type rec struct{ key, value *string }
	s := func(v string) *string { return &v }
	want := []rec{
		{s("k1"), s("v1")},
		{s("k2"), s("v=2 with = signs")},
		{nil, s("no separator")},
		{s(""), s("empty key")},
		{s("k5"), s("")},
		{nil, s("")},
		{s("key"), s("ünïcödé\ttab")},
		{s("big"), s(long)},
		{s("last"), s("no newline")},
	}

	got := decodeLines(t, clitest.MustRun(t, "", "consume", "rt", "--format", "json", b).Stdout)
	if len(got) != len(want) {
		t.Fatalf("consumed %d records, want %d", len(got), len(want))
	}
	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	for i, r := range got {
		if r.Topic != "rt" || r.Partition != 0 || r.Offset != int64(i) || r.Timestamp < before || r.Timestamp > after {
			t.Errorf("record %d: topic %s partition %d offset %d timestamp %d", i, r.Topic, r.Partition, r.Offset, r.Timestamp)
		}
		if str(r.Key) != str(want[i].key) || str(r.Value) != str(want[i].value) || r.KeyEncoding != "" || r.ValueEncoding != "" {
			t.Errorf("record %d: key %.30q value %.30q, want %.30q %.30q", i, str(r.Key), str(r.Value), str(want[i].key), str(want[i].value))
		}
		if len(r.Headers) != 2 || r.Headers[0].Key != "source" || str(r.Headers[0].Value) != "test" || r.Headers[1].Key != "expr" || str(r.Headers[1].Value) != "a=b" {
			t.Errorf("record %d headers: %+v", i, r.Headers)
		}
	}

	// A template reproduces the input byte for byte.
	out := clitest.MustRun(t, "", "consume", "rt", "--format", `%k=%v\n`, b).Stdout
	wantOut := strings.Replace(input, "no separator", "=no separator", 1)
	wantOut = strings.Replace(wantOut, "\n\n", "\n=\n", 1) + "\n"
	if out != wantOut {
		t.Errorf("template output differs from the input (%d vs %d bytes)", len(out), len(wantOut))
	}
	out = clitest.MustRun(t, "", "consume", "rt", "-n", "2", "--format", `%T %p %o [%h] %%\t%k\n`, b).Stdout
	if want := "rt 0 0 [source=test,expr=a=b] %\tk1\nrt 0 1 [source=test,expr=a=b] %\tk2\n"; out != want {
		t.Errorf("template output %q, want %q", out, want)
	}
	out = clitest.MustRun(t, "", "consume", "rt", "-n", "3", b).Stdout
	if want := "v1\nv=2 with = signs\nno separator\n"; out != want {
		t.Errorf("text output %q, want %q", out, want)
	}
}

func TestBinaryRecordsInJSON(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	clitest.MustRun(t, "\xff\xfe|\x00ok\n", "produce", "bin", "-K", "|", b)
	got := decodeLines(t, clitest.MustRun(t, "", "consume", "bin", "--format", "json", b).Stdout)
	if len(got) != 1 || *got[0].Key != "//4=" || got[0].KeyEncoding != "base64" || *got[0].Value != "\x00ok" || got[0].ValueEncoding != "" {
		t.Errorf("binary record as JSON: %+v", got)
	}
	if out := clitest.MustRun(t, "", "consume", "bin", "--format", `%k|%v\n`, b).Stdout; out != "\xff\xfe|\x00ok\n" {
		t.Errorf("binary record through a template: %q", out)
	}
}

// sorted compares multi-partition output, whose interleaving is up to the
// fetches.
func sorted(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func TestOffsets(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	clitest.MustRun(t, "", "topic", "create", "o", "-p", "3", b)
	clitest.MustRun(t, "a0\na1\na2\na3\na4\n", "produce", "o", "--partition", "0", b)
	clitest.MustRun(t, "b0\nb1\nb2\n", "produce", "o", "--partition", "1", b)
	// Partition 2 stays empty.

	tmpl := `%p:%o:%v\n`
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "0:0:a0\n0:1:a1\n0:2:a2\n0:3:a3\n0:4:a4\n1:0:b0\n1:1:b1\n1:2:b2"},
		{[]string{"--offset", "beginning"}, "0:0:a0\n0:1:a1\n0:2:a2\n0:3:a3\n0:4:a4\n1:0:b0\n1:1:b1\n1:2:b2"},
		{[]string{"--offset", "end"}, ""},
		{[]string{"-o", "3"}, "0:3:a3\n0:4:a4"},
		{[]string{"-o", "0", "-p", "1"}, "1:0:b0\n1:1:b1\n1:2:b2"},
		{[]string{"-o", "99"}, ""},
		{[]string{"-o", "-2"}, "0:3:a3\n0:4:a4\n1:1:b1\n1:2:b2"},
		{[]string{"--offset=-1", "-p", "0,2"}, "0:4:a4"},
		{[]string{"-o", "-10", "-p", "1", "-p", "2"}, "1:0:b0\n1:1:b1\n1:2:b2"},
		{[]string{"-p", "2"}, ""},
		{[]string{"-n", "2", "-p", "0"}, "0:0:a0\n0:1:a1"},
		{[]string{"-n", "100", "-p", "1"}, "1:0:b0\n1:1:b1\n1:2:b2"},
	} {
		args := append([]string{"consume", "o", "--format", tmpl, b}, tc.args...)
		got := clitest.MustRun(t, "", args...).Stdout
		if sorted(got) != tc.want {
			t.Errorf("consume %v:\n%s\nwant:\n%s", tc.args, got, tc.want+"\n")
		}
	}
	// Within a partition, records come in offset order.
	if got := clitest.MustRun(t, "", "consume", "o", "-p", "0", b).Stdout; got != "a0\na1\na2\na3\na4\n" {
		t.Errorf("partition 0 in order: %q", got)
	}
	// -n counts across partitions.
	if got := clitest.MustRun(t, "", "consume", "o", "-n", "6", b).Stdout; strings.Count(got, "\n") != 6 {
		t.Errorf("-n 6 printed %q", got)
	}
}

func TestOffsetByTimestamp(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	clitest.MustRun(t, "", "topic", "create", "ts", b)
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.Addr()), kgo.DefaultProduceTopic("ts"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for i := range 4 {
		r := &kgo.Record{Value: []byte{'v', byte('0' + i)}, Timestamp: base.Add(time.Duration(i) * time.Second)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ offset, want string }{
		{"@0", "v0\nv1\nv2\nv3\n"},
		{"@" + itoa(base.UnixMilli()), "v0\nv1\nv2\nv3\n"},
		{"@" + itoa(base.UnixMilli()+1), "v1\nv2\nv3\n"},
		{"@" + itoa(base.Add(2*time.Second).UnixMilli()), "v2\nv3\n"},
		{"@2024-05-01T12:00:02Z", "v2\nv3\n"},
		{"@2024-05-01T14:00:01.5+02:00", "v2\nv3\n"},
		{"@2024-05-01T12:00:03.001Z", ""},
		{"@2099-01-01T00:00:00Z", ""},
	} {
		got := clitest.MustRun(t, "", "consume", "ts", "--offset", tc.offset, b).Stdout
		if got != tc.want {
			t.Errorf("--offset %s: %q, want %q", tc.offset, got, tc.want)
		}
	}
	got := decodeLines(t, clitest.MustRun(t, "", "consume", "ts", "-n", "1", "--format", "json", b).Stdout)
	if len(got) != 1 || got[0].Timestamp != base.UnixMilli() {
		t.Errorf("json timestamp: %+v, want %d", got, base.UnixMilli())
	}
	if out := clitest.MustRun(t, "", "consume", "ts", "-n", "1", "--format", `%t\n`, b).Stdout; out != itoa(base.UnixMilli())+"\n" {
		t.Errorf("%%t: %q", out)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestEmptyTopicExits(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	clitest.MustRun(t, "", "topic", "create", "empty", "-p", "4", b)
	for _, args := range [][]string{{}, {"--format", "json"}, {"-o", "end"}, {"-o", "-5"}, {"-p", "3"}, {"-o", "@0"}} {
		r := clitest.MustRun(t, "", append([]string{"consume", "empty", b}, args...)...)
		if r.Stdout != "" || r.Stderr != "" {
			t.Errorf("consume empty %v: %+v", args, r)
		}
	}
}

func TestFollow(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	clitest.MustRun(t, "", "topic", "create", "live", b)
	done := make(chan clitest.Result, 1)
	go func() {
		done <- clitest.Run(t, "", "consume", "live", "--follow", "-n", "3", b)
	}()
	// Whether the consumer starts before or after these records arrive, it
	// reads from the beginning and stops after three.
	clitest.MustRun(t, "one\ntwo\n", "produce", "live", b)
	clitest.MustRun(t, "three\nfour\n", "produce", "live", b)
	r := <-done
	if r.Code != 0 || r.Stdout != "one\ntwo\nthree\n" {
		t.Errorf("follow: %+v", r)
	}
}

func TestConsumeErrors(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	clitest.MustRun(t, "", "topic", "create", "two", "-p", "2", b)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, `weir: topic "nope" does not exist`},
		{[]string{"two", "-p", "2"}, `weir: topic "two" has no partition 2 (it has partitions 0-1)`},
		{[]string{"two", "-o", "soon"}, `weir: --offset "soon" is not beginning, end, N, -N or @TIME`},
		{[]string{"two", "--format", "yaml"}, `weir: --format must be text, json or a template`},
		{[]string{"two", "--format", `%v\q`}, `weir: template "%v\\q": unknown escape "\\q" at byte 2`},
		{[]string{"two", "-n", "-1"}, `weir: --num must be 0 (no limit) or more, not -1`},
		{[]string{}, `weir: consume takes one TOPIC (got 0 arguments; see --help)`},
	} {
		got := clitest.Fails(t, "", append(append([]string{"consume"}, tc.args...), b)...)
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("consume %v:\n got %s\nwant %s...", tc.args, got, tc.want)
		}
	}
	// Consuming must not create the topic it was asked about.
	if out := clitest.MustRun(t, "", "topic", "list", b).Stdout; strings.Contains(out, "nope") {
		t.Errorf("consume auto-created a topic:\n%s", out)
	}
}
