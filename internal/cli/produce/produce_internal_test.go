package produce

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

func readAll(t *testing.T, r io.Reader, max int) ([]string, error) {
	t.Helper()
	lr := newLineReader(r, max)
	var lines []string
	for {
		line, err := lr.next()
		if err == io.EOF {
			return lines, nil
		}
		if err != nil {
			return lines, err
		}
		lines = append(lines, string(line))
	}
}

func TestLineReader(t *testing.T) {
	long := strings.Repeat("x", 200<<10) // beyond bufio.Scanner's 64 KiB token limit
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"empty input", "", nil},
		{"one line", "a\n", []string{"a"}},
		{"no final newline", "a\nb", []string{"a", "b"}},
		{"empty lines are records", "\n\na\n", []string{"", "", "a"}},
		{"carriage returns are data", "a\r\n", []string{"a\r"}},
		{"long line", "s\n" + long + "\ne", []string{"s", long, "e"}},
		{"long last line", long, []string{long}},
	} {
		// OneByteReader makes every line cross many reads.
		for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
			got, err := readAll(t, r, 1<<20)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%s: %d lines, want %d", tc.name, len(got), len(tc.want))
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("%s: line %d is %.20q (len %d), want %.20q (len %d)", tc.name, i, got[i], len(got[i]), tc.want[i], len(tc.want[i]))
				}
			}
		}
	}
}

func TestLineReaderLimit(t *testing.T) {
	in := "ok\n" + strings.Repeat("y", 10) + "\n" + strings.Repeat("z", 11) + "\n"
	got, err := readAll(t, strings.NewReader(in), 10)
	if len(got) != 2 || err == nil || err.Error() != "line 3 is longer than --max-message-bytes (10 bytes)" {
		t.Errorf("got %d lines and %v", len(got), err)
	}
}

func TestLineReaderLinesDoNotAlias(t *testing.T) {
	lr := newLineReader(strings.NewReader("first\nsecond\n"), 100)
	a, _ := lr.next()
	b, _ := lr.next()
	if string(a) != "first" || string(b) != "second" {
		t.Errorf("lines %q %q: records must own their bytes", a, b)
	}
}

func TestSummaryView(t *testing.T) {
	s := newSummary("events", 20000, 2_500_000, 2*time.Second)
	var text, js bytes.Buffer
	if err := clientcmd.Text.Print(&text, s); err != nil {
		t.Fatal(err)
	}
	if err := clientcmd.JSON.Print(&js, s); err != nil {
		t.Fatal(err)
	}
	if want := "produced 20000 records (2.50 MB) to events in 2s: 10000 records/s, 1.25 MB/s\n"; text.String() != want {
		t.Errorf("text %q, want %q", text.String(), want)
	}
	if want := `{"topic":"events","records":20000,"bytes":2500000,"elapsed_seconds":2,"records_per_second":10000,"mb_per_second":1.25}` + "\n"; js.String() != want {
		t.Errorf("json %q, want %q", js.String(), want)
	}
	zero := newSummary("t", 0, 0, 0)
	text.Reset()
	zero.WriteText(&text)
	if want := "produced 0 records (0 B) to t in 0s: 0 records/s, 0.00 MB/s\n"; text.String() != want {
		t.Errorf("empty run: %q, want %q", text.String(), want)
	}
	text.Reset()
	newSummary("t", 1, 1500, time.Second).WriteText(&text)
	if want := "produced 1 record (1.50 kB) to t in 1s: 1 records/s, 0.00 MB/s\n"; text.String() != want {
		t.Errorf("one record: %q, want %q", text.String(), want)
	}
}

func TestTransactionalSummaryView(t *testing.T) {
	for _, tc := range []struct {
		txns       int64
		text, json string
	}{
		{0, "produced 0 records (0 B) to t in 0s: 0 records/s, 0.00 MB/s; 0 transactions committed\n",
			`{"topic":"t","records":0,"bytes":0,"elapsed_seconds":0,"records_per_second":0,"mb_per_second":0,"transactional_id":"id","transactions_committed":0}`},
		{1, "produced 0 records (0 B) to t in 0s: 0 records/s, 0.00 MB/s; 1 transaction committed\n",
			`{"topic":"t","records":0,"bytes":0,"elapsed_seconds":0,"records_per_second":0,"mb_per_second":0,"transactional_id":"id","transactions_committed":1}`},
	} {
		s := newSummary("t", 0, 0, 0).withTransactions("id", tc.txns)
		var text, js bytes.Buffer
		if err := clientcmd.Text.Print(&text, s); err != nil {
			t.Fatal(err)
		}
		if err := clientcmd.JSON.Print(&js, s); err != nil {
			t.Fatal(err)
		}
		if text.String() != tc.text {
			t.Errorf("text %q, want %q", text.String(), tc.text)
		}
		if js.String() != tc.json+"\n" {
			t.Errorf("json %q, want %q", js.String(), tc.json)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.00 kB", 1_234_567: "1.23 MB", 5e9: "5.00 GB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
