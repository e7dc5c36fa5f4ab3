package consume

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recordFormat appends one record to an output buffer.
type recordFormat interface {
	appendRecord(dst []byte, r *kgo.Record) []byte
}

// parseRecordFormat reads consume's --format: text, json, or a template.
func parseRecordFormat(s string) (recordFormat, error) {
	switch s {
	case "text":
		return textFormat{}, nil
	case "json":
		return jsonFormat{}, nil
	}
	if !strings.Contains(s, "%") {
		return nil, fmt.Errorf("--format must be text, json or a template with %%-specifiers such as '%%k=%%v\\n', not %q", s)
	}
	return parseTemplate(s)
}

// textFormat prints values one per line, the way they were produced.
type textFormat struct{}

func (textFormat) appendRecord(dst []byte, r *kgo.Record) []byte {
	return append(append(dst, r.Value...), '\n')
}

// jsonFormat prints one JSON object per line. Keys, values and header values
// are JSON strings when they are valid UTF-8, which is what people produce
// from a terminal; anything else is base64 with an *_encoding field saying
// so, so that no byte is lost. A nil key or value is null.
type jsonFormat struct{}

type jsonHeader struct {
	Key           string  `json:"key"`
	Value         *string `json:"value"`
	ValueEncoding string  `json:"value_encoding,omitempty"`
}

type jsonRecord struct {
	Topic         string       `json:"topic"`
	Partition     int32        `json:"partition"`
	Offset        int64        `json:"offset"`
	Timestamp     int64        `json:"timestamp"`
	Key           *string      `json:"key"`
	KeyEncoding   string       `json:"key_encoding,omitempty"`
	Value         *string      `json:"value"`
	ValueEncoding string       `json:"value_encoding,omitempty"`
	Headers       []jsonHeader `json:"headers"`
}

func encodeBytes(b []byte) (*string, string) {
	if b == nil {
		return nil, ""
	}
	if utf8.Valid(b) {
		s := string(b)
		return &s, ""
	}
	s := base64.StdEncoding.EncodeToString(b)
	return &s, "base64"
}

func (jsonFormat) appendRecord(dst []byte, r *kgo.Record) []byte {
	jr := jsonRecord{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Timestamp: r.Timestamp.UnixMilli(),
		Headers:   make([]jsonHeader, 0, len(r.Headers)),
	}
	jr.Key, jr.KeyEncoding = encodeBytes(r.Key)
	jr.Value, jr.ValueEncoding = encodeBytes(r.Value)
	for _, h := range r.Headers {
		jh := jsonHeader{Key: h.Key}
		jh.Value, jh.ValueEncoding = encodeBytes(h.Value)
		jr.Headers = append(jr.Headers, jh)
	}
	buf := bytes.NewBuffer(dst)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	// Encoding strings, numbers and slices of them cannot fail.
	_ = enc.Encode(jr)
	return buf.Bytes()
}
