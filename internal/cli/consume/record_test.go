package consume

import (
	"encoding/json"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestTextFormat(t *testing.T) {
	got := textFormat{}.appendRecord([]byte("prev\n"), testRecord())
	if string(got) != "prev\n{\"n\":1}\n" {
		t.Errorf("got %q", got)
	}
}

func TestJSONFormat(t *testing.T) {
	got := string(jsonFormat{}.appendRecord(nil, testRecord()))
	want := `{"topic":"events","partition":3,"offset":42,"timestamp":1700000000123,"key":"user-1","value":"{\"n\":1}","headers":[{"key":"a","value":"1"},{"key":"b","value":"x=y"}]}` + "\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestJSONFormatNilAndBinary(t *testing.T) {
	r := &kgo.Record{Topic: "t", Value: []byte{0xff, 0x00, '<'}, Headers: []kgo.RecordHeader{{Key: "h", Value: []byte{0xfe}}, {Key: "n"}}}
	got := string(jsonFormat{}.appendRecord(nil, r))
	want := `{"topic":"t","partition":0,"offset":0,"timestamp":` + jsonInt(r.Timestamp.UnixMilli()) + `,"key":null,"value":"/wA8","value_encoding":"base64","headers":[{"key":"h","value":"/g==","value_encoding":"base64"},{"key":"n","value":null}]}` + "\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var back jsonRecord
	if err := json.Unmarshal([]byte(got), &back); err != nil {
		t.Fatal(err)
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestParseRecordFormat(t *testing.T) {
	for _, ok := range []string{"text", "json", "%v", `%k=%v\n`} {
		if _, err := parseRecordFormat(ok); err != nil {
			t.Errorf("parseRecordFormat(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"yaml", "", `plain\n`, "%q"} {
		if _, err := parseRecordFormat(bad); err == nil {
			t.Errorf("parseRecordFormat(%q) succeeded", bad)
		}
	}
}
