package consume

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func testRecord() *kgo.Record {
	return &kgo.Record{
		Topic:     "events",
		Partition: 3,
		Offset:    42,
		Timestamp: time.UnixMilli(1700000000123),
		Key:       []byte("user-1"),
		Value:     []byte(`{"n":1}`),
		Headers:   []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("x=y")}},
	}
}

func TestTemplate(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{`%v\n`, "{\"n\":1}\n"},
		{`%p:%o %k=%v\n`, "3:42 user-1={\"n\":1}\n"},
		{`%T/%p@%t`, "events/3@1700000000123"},
		{`[%h]`, "[a=1,b=x=y]"},
		{`100%% %k\t%k\r\\`, "100% user-1\tuser-1\r\\"},
		{`no fields`, "no fields"},
		{``, ""},
		{`%k%v`, "user-1{\"n\":1}"},
		{"é%kü", "éuser-1ü"},
	} {
		tmpl, err := parseTemplate(tc.in)
		if err != nil {
			t.Errorf("parseTemplate(%q): %v", tc.in, err)
			continue
		}
		if got := string(tmpl.appendRecord(nil, testRecord())); got != tc.want {
			t.Errorf("template %q rendered %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTemplateEmptyFields(t *testing.T) {
	tmpl, err := parseTemplate(`[%k][%v][%h]`)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(tmpl.appendRecord(nil, &kgo.Record{})); got != "[][][]" {
		t.Errorf("got %q", got)
	}
}

func TestTemplateErrors(t *testing.T) {
	for _, tc := range []struct{ in, wantErr string }{
		{`%`, "lone %"},
		{`abc%`, "lone %"},
		{`%x`, `unknown specifier "%x" at byte 0`},
		{`ab%K`, `unknown specifier "%K" at byte 2`},
		{`\`, `lone \`},
		{`\q`, `unknown escape "\\q" at byte 0`},
		{"%\xff", `unknown specifier "%\xff"`},
	} {
		_, err := parseTemplate(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("parseTemplate(%q) = %v, want an error containing %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestTemplateStringRoundTrip(t *testing.T) {
	in := `%%%k\t%v\n\\%h%o%p%t%T`
	tmpl, err := parseTemplate(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := tmpl.String(); got != in {
		t.Errorf("String() = %q, want %q", got, in)
	}
}

// FuzzTemplate checks that any user-typed template either is rejected or
// renders without panicking, that its canonical form parses to the same
// template, and that text without % or \ is printed as is.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{`%v\n`, `%p:%o %k=%v\n`, `%%`, `\\`, `%`, `\`, `%h%t%T`, "plain", ""} {
		f.Add(s)
	}
	rec := testRecord()
	f.Fuzz(func(t *testing.T, s string) {
		tmpl, err := parseTemplate(s)
		if err != nil {
			return
		}
		out := tmpl.appendRecord(nil, rec)
		if !strings.ContainsAny(s, `%\`) && string(out) != s {
			t.Fatalf("template %q without specifiers rendered %q", s, out)
		}
		canon := tmpl.String()
		again, err := parseTemplate(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, s, err)
		}
		if out2 := again.appendRecord(nil, rec); !bytes.Equal(out, out2) {
			t.Fatalf("template %q rendered %q but its canonical form %q rendered %q", s, out, canon, out2)
		}
		if again.String() != canon {
			t.Fatalf("canonical form is not stable: %q then %q", canon, again.String())
		}
	})
}
