package consume

import (
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// field is one thing a template can print of a record.
type field byte

const (
	literal field = iota
	fieldKey
	fieldValue
	fieldHeaders
	fieldOffset
	fieldPartition
	fieldTimestamp
	fieldTopic
)

// letters are the template's %x specifiers, kcat's letters, indexed by field.
const letters = "\x00kvhoptT"

func specifier(c byte) (field, bool) {
	for f := fieldKey; f <= fieldTopic; f++ {
		if letters[f] == c {
			return f, true
		}
	}
	return literal, false
}

func unescape(c byte) (byte, bool) {
	switch c {
	case 'n':
		return '\n', true
	case 't':
		return '\t', true
	case 'r':
		return '\r', true
	case '\\':
		return '\\', true
	}
	return 0, false
}

type segment struct {
	field field
	text  []byte // for literal
}

// template is a parsed --format string such as '%p:%o %k=%v\n'.
type template struct {
	segments []segment
}

// parseTemplate reads a template. It is strict: an unknown specifier or
// escape is an error, so that a typo does not silently print garbage.
func parseTemplate(s string) (*template, error) {
	t := &template{}
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			t.segments = append(t.segments, segment{field: literal, text: lit})
			lit = nil
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '%':
			if i+1 == len(s) {
				return nil, fmt.Errorf("template %q ends in a lone %%; write %%%% for a percent sign", s)
			}
			i++
			if s[i] == '%' {
				lit = append(lit, '%')
				continue
			}
			f, ok := specifier(s[i])
			if !ok {
				return nil, fmt.Errorf("template %q: unknown specifier %s at byte %d (use %%k %%v %%h %%o %%p %%t %%T or %%%%)", s, strconv.QuoteToASCII(s[i-1:i+1]), i-1)
			}
			flush()
			t.segments = append(t.segments, segment{field: f})
		case '\\':
			if i+1 == len(s) {
				return nil, fmt.Errorf("template %q ends in a lone \\; write \\\\ for a backslash", s)
			}
			i++
			e, ok := unescape(s[i])
			if !ok {
				return nil, fmt.Errorf("template %q: unknown escape %s at byte %d (use \\n \\t \\r or \\\\)", s, strconv.QuoteToASCII(s[i-1:i+1]), i-1)
			}
			lit = append(lit, e)
		default:
			lit = append(lit, c)
		}
	}
	flush()
	return t, nil
}

// appendRecord appends r as the template describes.
func (t *template) appendRecord(dst []byte, r *kgo.Record) []byte {
	for _, s := range t.segments {
		switch s.field {
		case literal:
			dst = append(dst, s.text...)
		case fieldKey:
			dst = append(dst, r.Key...)
		case fieldValue:
			dst = append(dst, r.Value...)
		case fieldHeaders:
			for i, h := range r.Headers {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, h.Key...)
				dst = append(dst, '=')
				dst = append(dst, h.Value...)
			}
		case fieldOffset:
			dst = strconv.AppendInt(dst, r.Offset, 10)
		case fieldPartition:
			dst = strconv.AppendInt(dst, int64(r.Partition), 10)
		case fieldTimestamp:
			dst = strconv.AppendInt(dst, r.Timestamp.UnixMilli(), 10)
		case fieldTopic:
			dst = append(dst, r.Topic...)
		}
	}
	return dst
}

// String is the canonical source of t: parsing it gives back an equivalent
// template.
func (t *template) String() string {
	var out []byte
	for _, s := range t.segments {
		if s.field != literal {
			out = append(out, '%', letters[s.field])
			continue
		}
		for _, c := range s.text {
			switch c {
			case '%':
				out = append(out, '%', '%')
			case '\\':
				out = append(out, '\\', '\\')
			case '\n':
				out = append(out, '\\', 'n')
			case '\t':
				out = append(out, '\\', 't')
			case '\r':
				out = append(out, '\\', 'r')
			default:
				out = append(out, c)
			}
		}
	}
	return string(out)
}
