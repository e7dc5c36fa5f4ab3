package clientcmd

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/pflag"
)

// Format is how a command prints its result.
type Format string

// The formats every client command accepts.
const (
	Text Format = "text"
	JSON Format = "json"
)

// AddFormatFlag registers --format text|json.
func AddFormatFlag(fs *pflag.FlagSet, f *string) {
	fs.StringVar(f, "format", string(Text), "output format: text or json")
}

// ParseFormat checks a --format value.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case Text, JSON:
		return Format(s), nil
	}
	return "", fmt.Errorf("--format must be text or json, not %q", s)
}

// Texter is a view: a value with JSON field tags that can also write itself
// for people.
type Texter interface {
	WriteText(w io.Writer) error
}

// Print writes v in format f: text through its WriteText, JSON as one
// document on one line so that output can be piped line by line.
func (f Format) Print(w io.Writer, v Texter) error {
	if f == JSON {
		return WriteJSON(w, v)
	}
	return v.WriteText(w)
}

// WriteJSON writes v as one line of JSON. HTML escaping is off because the
// output goes to terminals and tools, not to browsers, and record data should
// come back as it went in.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// Table aligns rows in columns separated by two spaces.
type Table struct{ tw *tabwriter.Writer }

// NewTable starts a table with a header row.
func NewTable(w io.Writer, headers ...string) *Table {
	t := &Table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(headers) > 0 {
		cells := make([]any, len(headers))
		for i, h := range headers {
			cells[i] = h
		}
		t.Row(cells...)
	}
	return t
}

// Row adds one row; cells are formatted with %v.
func (t *Table) Row(cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, c)
	}
	fmt.Fprint(t.tw, "\n")
}

// Flush writes the table out.
func (t *Table) Flush() error { return t.tw.Flush() }
