package clientcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kerr"
)

func TestBrokers(t *testing.T) {
	env := func(v string, ok bool) func(string) (string, bool) {
		return func(name string) (string, bool) {
			if name != BrokersEnv {
				t.Errorf("looked up %s", name)
			}
			return v, ok
		}
	}
	for _, tc := range []struct {
		flags []string
		env   func(string) (string, bool)
		want  string
	}{
		{nil, nil, "127.0.0.1:9092"},
		{nil, env("", false), "127.0.0.1:9092"},
		{nil, env("  ", true), "127.0.0.1:9092"},
		{nil, env("a:1, b:2", true), "a:1|b:2"},
		{[]string{"--brokers", "c:3"}, env("a:1", true), "c:3"},
		{[]string{"--brokers=c:3,,d:4"}, nil, "c:3|d:4"},
	} {
		p := NewParams(tc.env)
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		p.AddConnFlags(fs)
		if err := fs.Parse(tc.flags); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(p.Brokers(), "|"); got != tc.want {
			t.Errorf("flags %v: brokers %s, want %s", tc.flags, got, tc.want)
		}
	}
}

func TestKafkaErr(t *testing.T) {
	if KafkaErr("t", nil, "x") != nil {
		t.Error("nil error became non-nil")
	}
	err := KafkaErr("t", kerr.UnknownTopicOrPartition, "")
	if err.Error() != `topic "t" does not exist` || !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("unknown topic: %v", err)
	}
	err = KafkaErr("t", kerr.InvalidConfig, "retention.ms: not a number")
	if err.Error() != "INVALID_CONFIG: retention.ms: not a number" || !errors.Is(err, kerr.InvalidConfig) {
		t.Errorf("broker message: %v", err)
	}
	if err := KafkaErr("t", kerr.InvalidConfig, ""); err != kerr.InvalidConfig {
		t.Errorf("no broker message: %v", err)
	}
	wrapped := fmt.Errorf("context: %w", kerr.InvalidConfig)
	if err := KafkaErr("t", wrapped, "msg"); err != wrapped {
		t.Errorf("an already wrapped error keeps its own text: %v", err)
	}
}

func TestUnreachableError(t *testing.T) {
	e := &UnreachableError{Brokers: []string{"h:1"}, Timeout: time.Second, Err: context.DeadlineExceeded}
	if e.Error() != "cannot reach broker at h:1: no answer within 1s" {
		t.Error(e.Error())
	}
	e = &UnreachableError{Brokers: []string{"h:1", "h:2"}, Err: io.EOF}
	if e.Error() != "cannot reach any broker of h:1,h:2: EOF" || !errors.Is(e, io.EOF) {
		t.Error(e.Error())
	}
}

func TestParseKV(t *testing.T) {
	kvs, err := ParseKVs("--set", []string{"a=1", "b==2", "c="})
	if err != nil || fmt.Sprint(kvs) != "[{a 1} {b =2} {c }]" {
		t.Errorf("got %v, %v", kvs, err)
	}
	for _, bad := range []string{"a", "=1", ""} {
		if _, err := ParseKV("--set", bad); err == nil {
			t.Errorf("ParseKV(%q) succeeded", bad)
		}
	}
}

type view struct {
	A int    `json:"a"`
	B string `json:"b"`
}

func (v view) WriteText(w io.Writer) error {
	t := NewTable(w, "A", "LONG-HEADER")
	t.Row(v.A, v.B)
	return t.Flush()
}

func TestFormat(t *testing.T) {
	for _, s := range []string{"yaml", "", "JSON"} {
		if _, err := ParseFormat(s); err == nil {
			t.Errorf("ParseFormat(%q) succeeded", s)
		}
	}
	v := view{A: 1, B: "<&>"}
	var text, js bytes.Buffer
	Text.Print(&text, v)
	JSON.Print(&js, v)
	if text.String() != "A  LONG-HEADER\n1  <&>\n" {
		t.Errorf("text %q", text.String())
	}
	if js.String() != `{"a":1,"b":"<&>"}`+"\n" {
		t.Errorf("json %q", js.String())
	}
}
