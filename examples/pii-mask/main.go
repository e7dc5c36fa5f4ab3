// Command pii-mask is a map transform that hides personal data in JSON
// values: every field named in the "fields" parameter (comma-separated,
// at any depth) gets the value "***", and every match of the "pattern"
// parameter (a regular expression) in the remaining strings is masked
// too. A value that is not JSON is masked by pattern as plain text.
package main

import (
	"encoding/json"
	"regexp"
	"strings"

	"github.com/weir-dev/weir/sdk/go/transform"
)

const mask = "***"

var (
	fields  map[string]bool
	pattern *regexp.Regexp
	ready   bool
)

func setup() error {
	ready = true
	fields = map[string]bool{}
	if f, ok := transform.Param("fields"); ok {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				fields[name] = true
			}
		}
	}
	if p, ok := transform.Param("pattern"); ok && p != "" {
		re, err := regexp.Compile(p)
		if err != nil {
			return err
		}
		pattern = re
	}
	return nil
}

func scrub(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if fields[k] {
				t[k] = mask
			} else {
				t[k] = scrub(x)
			}
		}
		return t
	case []any:
		for i, x := range t {
			t[i] = scrub(x)
		}
		return t
	case string:
		if pattern != nil {
			return pattern.ReplaceAllString(t, mask)
		}
	}
	return v
}

func init() {
	transform.OnMap(func(r transform.Record) (transform.Record, error) {
		if !ready {
			if err := setup(); err != nil {
				return r, err
			}
		}
		var doc any
		if err := json.Unmarshal(r.Value, &doc); err != nil {
			if pattern != nil {
				r.Value = pattern.ReplaceAll(r.Value, []byte(mask))
			}
			return r, nil
		}
		out, err := json.Marshal(scrub(doc))
		if err != nil {
			return r, err
		}
		r.Value = out
		return r, nil
	})
}

func main() {}
