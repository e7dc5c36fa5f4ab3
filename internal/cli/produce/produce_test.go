package produce_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/weir-dev/weir/internal/cli/clitest"
	"github.com/weir-dev/weir/internal/config"
	"github.com/weir-dev/weir/internal/server/servertest"
)

var summaryLine = regexp.MustCompile(`^produced (\d+) records \(([^)]+)\) to (\S+) in \S+: \d+ records/s, [0-9.]+ MB/s\n$`)

func TestProduceSummary(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()

	r := clitest.MustRun(t, "a\nbb\nccc\n", "produce", "t", b)
	if r.Stdout != "" {
		t.Errorf("text mode printed on stdout: %q", r.Stdout)
	}
	m := summaryLine.FindStringSubmatch(r.Stderr)
	if m == nil || m[1] != "3" || m[2] != "6 B" || m[3] != "t" {
		t.Errorf("summary %q", r.Stderr)
	}

	r = clitest.MustRun(t, "k:v\nk2:v2", "produce", "t", "--key-separator", ":", "--format", "json", b)
	if r.Stderr != "" {
		t.Errorf("json mode printed on stderr: %q", r.Stderr)
	}
	var s struct {
		Topic   string  `json:"topic"`
		Records int64   `json:"records"`
		Bytes   int64   `json:"bytes"`
		Elapsed float64 `json:"elapsed_seconds"`
		Rate    float64 `json:"records_per_second"`
		MBps    float64 `json:"mb_per_second"`
	}
	if strings.Count(r.Stdout, "\n") != 1 {
		t.Fatalf("json summary is not one line: %q", r.Stdout)
	}
	if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil {
		t.Fatal(err)
	}
	if s.Topic != "t" || s.Records != 2 || s.Bytes != 6 || s.Elapsed <= 0 {
		t.Errorf("json summary %+v", s)
	}
	if got := clitest.MustRun(t, "", "consume", "t", "--format", `%k|%v\n`, b).Stdout; got != "|a\n|bb\n|ccc\nk|v\nk2|v2\n" {
		t.Errorf("consumed %q", got)
	}
}

func TestProduceFile(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	path := filepath.Join(t.TempDir(), "in.txt")
	var in strings.Builder
	long := strings.Repeat("L", 300<<10)
	for i := range 2000 {
		if i == 1000 {
			in.WriteString(long + "\n")
			continue
		}
		in.WriteString(strings.Repeat("v", i%50) + "\n")
	}
	if err := os.WriteFile(path, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	// Stderr is a buffer, not a terminal: no progress bar unless asked.
	r := clitest.MustRun(t, "", "produce", "f", "--file", path, "--compression", "lz4", b)
	if m := summaryLine.FindStringSubmatch(r.Stderr); m == nil || m[1] != "2000" {
		t.Errorf("stderr without --progress: %q", r.Stderr)
	}
	r = clitest.MustRun(t, "", "produce", "f", "--file", path, "--progress", "--acks", "1", b)
	if !strings.Contains(r.Stderr, "producing to f") {
		t.Errorf("--progress drew no bar: %q", r.Stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.Stderr, "\n"), "\n")
	if m := summaryLine.FindStringSubmatch(lines[len(lines)-1] + "\n"); m == nil || m[1] != "2000" {
		t.Errorf("summary after the progress bar: %q", lines[len(lines)-1])
	}

	got := clitest.MustRun(t, "", "consume", "f", b).Stdout
	if got != in.String()+in.String() {
		t.Errorf("consumed %d bytes, want both copies of the file (%d bytes)", len(got), 2*in.Len())
	}
	if got := clitest.Fails(t, "", "produce", "f", "--file", filepath.Join(t.TempDir(), "missing"), b); !strings.HasPrefix(got, "weir: open ") {
		t.Errorf("missing file: %s", got)
	}
}

func TestProduceOptions(t *testing.T) {
	n := servertest.Start(t, nil)
	b := "--brokers=" + n.Addr()
	clitest.MustRun(t, "", "topic", "create", "p3", "-p", "3", b)
	for _, c := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		for _, acks := range []string{"all", "1", "0"} {
			clitest.MustRun(t, c+"-"+acks+"\n", "produce", "p3", "--partition", "2", "--compression", c, "--acks", acks, b)
		}
	}
	got := clitest.MustRun(t, "", "consume", "p3", "--format", `%p:%v\n`, b).Stdout
	var want strings.Builder
	for _, c := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		for _, acks := range []string{"all", "1", "0"} {
			want.WriteString("2:" + c + "-" + acks + "\n")
		}
	}
	// acks=0 gets no answer, so its record may still be on its way when
	// the command exits; everything acknowledged must be there, in order.
	if !sameIgnoringAcks0(got, want.String()) {
		t.Errorf("consumed:\n%s\nwant:\n%s", got, want.String())
	}
}

// sameIgnoringAcks0 compares outputs allowing acks=0 records to be missing.
func sameIgnoringAcks0(got, want string) bool {
	var w []string
	for _, l := range strings.Split(want, "\n") {
		if !strings.HasSuffix(l, "-0") {
			w = append(w, l)
		}
	}
	var g []string
	for _, l := range strings.Split(got, "\n") {
		if !strings.HasSuffix(l, "-0") {
			g = append(g, l)
		}
	}
	return strings.Join(g, "\n") == strings.Join(w, "\n")
}

func TestProduceErrors(t *testing.T) {
	n := servertest.Start(t, func(c *config.Config) { c.AutoCreateTopics = false })
	b := "--brokers=" + n.Addr()
	clitest.MustRun(t, "", "topic", "create", "small", "-c", "max.message.bytes=1000", b)

	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{strings.Repeat("x", 2000) + "\n", []string{"small"}, "weir: produce to small[0]: MESSAGE_TOO_LARGE: "},
		{"ok\n" + strings.Repeat("x", 700) + "\n", []string{"small", "--max-message-bytes", "600"}, "weir: read stdin: line 2 is longer than --max-message-bytes (600 bytes)"},
		{"a\n", []string{"small", "--max-message-bytes", "100"}, "weir: --max-message-bytes must be at least 512, not 100"},
		{"a\n", []string{"nope"}, `weir: topic "nope" does not exist`},
		{"a\n", []string{"small", "--partition", "5"}, "weir: produce to small[5]: "},
		{"a\n", []string{"small", "--partition", "-2"}, "weir: --partition must be 0 or more"},
		{"a\n", []string{"small", "--acks", "2"}, `weir: --acks must be all, 1 or 0, not "2"`},
		{"a\n", []string{"small", "--compression", "brotli"}, `weir: --compression must be none, gzip, snappy, lz4 or zstd, not "brotli"`},
		{"a\n", []string{"small", "-H", "novalue"}, `weir: --header "novalue" is not key=value`},
		{"a\n", []string{"small", "--format", "yaml"}, `weir: --format must be text or json, not "yaml"`},
		{"a\n", nil, "weir: produce takes one TOPIC (got 0 arguments; see --help)"},
	} {
		got := clitest.Fails(t, tc.stdin, append(append([]string{"produce"}, tc.args...), b)...)
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("produce %v:\n got %s\nwant %s...", tc.args, got, tc.want)
		}
	}
	// Only the line before the unreadable one was produced.
	if got := clitest.MustRun(t, "", "consume", "small", b).Stdout; got != "ok\n" {
		t.Errorf("records after the failures: %q", got)
	}
}
