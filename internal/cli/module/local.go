package module

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
	"github.com/weir-dev/weir/internal/record"
	"github.com/weir-dev/weir/internal/transform"
)

var scaffold = template.Must(template.New("main").Parse(`// Package main is a Weir {{.Kind}} transform. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o {{.Name}}.wasm .
//
// try it with
//
//	weir module test {{.Name}}.wasm --input sample.jsonl
//
// and publish it with
//
//	weir module publish {{.Name}}.wasm --name {{.Name}} --version 0.1.0
package main

import (
{{- if eq .Kind "map"}}
	"bytes"
{{end}}
	"github.com/weir-dev/weir/sdk/go/transform"
)

func init() {
{{- if eq .Kind "filter"}}
	transform.OnFilter(func(r transform.Record) bool {
		return len(r.Value) > 0
	})
{{- else if eq .Kind "map"}}
	transform.OnMap(func(r transform.Record) (transform.Record, error) {
		r.Value = bytes.ToUpper(r.Value)
		return r, nil
	})
{{- else if eq .Kind "filter-map"}}
	transform.OnFilterMap(func(r transform.Record) (transform.Record, bool, error) {
		return r, len(r.Value) > 0, nil
	})
{{- else if eq .Kind "flat-map"}}
	transform.OnFlatMap(func(r transform.Record, emit func(transform.Record)) error {
		emit(r)
		return nil
	})
{{- else}}
	transform.OnAggregate(func(s transform.State, r transform.Record, emit func(transform.Record)) error {
		n, _ := s.Get(r.Key)
		n = append(n, '+')
		s.Set(r.Key, n)
		emit(transform.Record{Key: r.Key, Value: n, Timestamp: r.Timestamp})
		return nil
	})
{{- end}}
}

func main() {}
`))

func newInit() *cobra.Command {
	var kind, sdkDir string
	cmd := &cobra.Command{
		Use:   "init DIR [--kind filter|map|filter-map|flat-map|aggregate]",
		Short: "Scaffold a Go transform module project",
		Args:  clientcmd.ExactArgs(1, "a directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch kind {
			case "filter", "map", "filter-map", "flat-map", "aggregate":
			default:
				return fmt.Errorf("--kind must be filter, map, filter-map, flat-map or aggregate, not %q", kind)
			}
			dir := args[0]
			name := filepath.Base(filepath.Clean(dir))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			main := filepath.Join(dir, "main.go")
			if _, err := os.Stat(main); err == nil {
				return fmt.Errorf("%s exists; not overwriting it", main)
			}
			var b strings.Builder
			if err := scaffold.Execute(&b, map[string]string{"Kind": kind, "Name": name}); err != nil {
				return err
			}
			files := map[string]string{
				"main.go":      b.String(),
				"go.mod":       goMod(name, sdkDir),
				"sample.jsonl": "{\"key\":\"a\",\"value\":\"hello\"}\n{\"key\":\"b\",\"value\":\"\"}\n",
			}
			for _, n := range []string{"go.mod", "sample.jsonl", "main.go"} {
				p := filepath.Join(dir, n)
				if _, err := os.Stat(p); err == nil && n != "main.go" {
					continue
				}
				if err := os.WriteFile(p, []byte(files[n]), 0o644); err != nil {
					return err
				}
			}
			get := "go get github.com/weir-dev/weir/sdk/go/transform && "
			if sdkDir != "" {
				get = ""
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created a %s module in %s; build it with:\n  cd %s && %sgo mod tidy && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o %s.wasm .\n", kind, dir, dir, get, name)
			return nil
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "map", "filter, map, filter-map, flat-map or aggregate")
	cmd.Flags().StringVar(&sdkDir, "sdk-dir", "", "use the SDK from this Weir checkout (a replace directive) instead of fetching it")
	return cmd
}

// goMod is the scaffold's go.mod: the SDK is fetched by `go get`, or taken
// from a local checkout.
func goMod(name, sdkDir string) string {
	m := fmt.Sprintf("module %s\n\ngo 1.24\n", name)
	if sdkDir != "" {
		abs, err := filepath.Abs(sdkDir)
		if err == nil {
			sdkDir = abs
		}
		m += fmt.Sprintf("\nrequire github.com/weir-dev/weir v0.0.0\n\nreplace github.com/weir-dev/weir => %s\n", sdkDir)
	}
	return m
}

// sampleRecord is one line of a --input file.
type sampleRecord struct {
	Key       *string           `json:"key"`
	Value     *string           `json:"value"`
	Headers   map[string]string `json:"headers"`
	Timestamp int64             `json:"timestamp"`
}

// testOutput is one line `module test` prints.
type testOutput struct {
	Input   int64             `json:"input"` // line number (the record's offset) it came from
	Output  int               `json:"output"`
	Key     *string           `json:"key,omitempty"`
	Value   *string           `json:"value,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Error   string            `json:"error,omitempty"`
}

// ReadSamples reads records from JSON lines: an object with key, value,
// headers and timestamp, or any other line as a value.
func ReadSamples(r io.Reader) ([]record.Record, error) {
	var out []record.Record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	now := time.Now().UnixMilli()
	for n := 0; sc.Scan(); n++ {
		line := sc.Bytes()
		rec := record.Record{OffsetDelta: int32(len(out)), TimestampDelta: 0}
		var s sampleRecord
		if json.Unmarshal(line, &s) == nil && (s.Key != nil || s.Value != nil) {
			if s.Key != nil {
				rec.Key = []byte(*s.Key)
			}
			if s.Value != nil {
				rec.Value = []byte(*s.Value)
			}
			for k, v := range s.Headers {
				rec.Headers = append(rec.Headers, record.RecordHeader{Key: k, Value: []byte(v)})
			}
			if s.Timestamp > 0 {
				rec.TimestampDelta = s.Timestamp - now
			}
		} else {
			rec.Value = append([]byte(nil), line...)
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}

func strp(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

func newTest() *cobra.Command {
	var input string
	var params, outputs []string
	cmd := &cobra.Command{
		Use:   "test FILE.wasm --input FILE.jsonl [--param k=v]",
		Short: "Run a module locally over sample records and print what it emits, as JSON lines",
		Args:  clientcmd.ExactArgs(1, "the module file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if input == "" {
				return errors.New("--input is required (JSON lines: {\"key\":…,\"value\":…,\"headers\":{…}}, or plain lines as values)")
			}
			kvs, err := clientcmd.ParseKVs("--param", params)
			if err != nil {
				return err
			}
			cfg := transform.Config{Params: map[string]string{}, Outputs: outputs}
			for _, kv := range kvs {
				cfg.Params[kv.Key] = kv.Value
			}
			wasm, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var in io.Reader
			if input == "-" {
				in = cmd.InOrStdin()
			} else {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			recs, err := ReadSamples(in)
			if err != nil {
				return fmt.Errorf("read %s: %w", input, err)
			}
			ctx := cmd.Context()
			rt, err := transform.NewRuntime(ctx, transform.Options{})
			if err != nil {
				return err
			}
			defer rt.Close(ctx)
			m, err := rt.Compile(ctx, wasm)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			logw := cmd.ErrOrStderr()
			inst, err := m.Instantiate(ctx, cfg, func(line string) { fmt.Fprintln(logw, "module:", line) })
			if err != nil {
				return err
			}
			defer inst.Close(ctx)
			if len(recs) == 0 {
				return nil
			}
			now := time.Now().UnixMilli()
			batch, err := record.Build(record.BatchOptions{FirstTimestamp: now, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs)
			if err != nil {
				return err
			}
			outs, err := inst.ProcessBatch(ctx, batch, nil)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for _, o := range outs {
				line := testOutput{Input: o.SourceOffset, Output: o.Output, Key: strp(o.Key), Value: strp(o.Value), Error: o.Err}
				if len(o.Headers) > 0 {
					line.Headers = map[string]string{}
					for _, h := range o.Headers {
						line.Headers[h.Key] = string(h.Value)
					}
				}
				if err := clientcmd.WriteJSON(w, line); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&input, "input", "", "sample records, JSON lines (- for stdin)")
	cmd.Flags().StringArrayVar(&params, "param", nil, "a parameter, as key=value (repeatable)")
	cmd.Flags().StringArrayVar(&outputs, "output", nil, "output topic names the module is told about (repeatable)")
	return cmd
}
