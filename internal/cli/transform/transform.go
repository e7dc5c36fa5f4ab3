// Package transform is `weir transform`: deploy WebAssembly transforms that
// brokers run on the leaders of their input partitions, and list,
// describe, pause, resume, delete them and read their logs.
package transform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
	"github.com/weir-dev/weir/internal/cli/module"
	"github.com/weir-dev/weir/internal/hub"
	wasm "github.com/weir-dev/weir/internal/transform"
)

// New returns the transform command and its verbs.
func New(p *clientcmd.Params) *cobra.Command {
	var format string
	return clientcmd.Noun(p, &format, &cobra.Command{
		Use:     "transform",
		Aliases: []string{"transforms"},
		Short:   "Deploy and manage WebAssembly transforms that run inside the brokers",
	},
		newDeploy(p, &format), newList(p, &format), newDescribe(p, &format),
		newSetPaused(p, true), newSetPaused(p, false), newDelete(p), newLogs(p, &format),
	)
}

func newDeploy(p *clientcmd.Params, format *string) *cobra.Command {
	var file, ref, input, onError, deadLetter, from string
	var outputs, params []string
	cmd := &cobra.Command{
		Use:   "deploy NAME (--module FILE.wasm | --module-ref NAME@VERSION) --input TOPIC --output TOPIC [--output TOPIC…]",
		Short: "Run a module on every record of a topic, writing what it emits to output topics",
		Args:  clientcmd.ExactArgs(1, "a transform name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := clientcmd.ParseFormat(*format)
			if err != nil {
				return err
			}
			if (file == "") == (ref == "") {
				return errors.New("give one of --module FILE.wasm or --module-ref NAME@VERSION")
			}
			if from != "beginning" && from != "end" {
				return fmt.Errorf("--from must be beginning or end, not %q", from)
			}
			kvs, err := clientcmd.ParseKVs("--param", params)
			if err != nil {
				return err
			}
			d := hub.Definition{Name: args[0], Input: input, Outputs: outputs, OnError: onError, DeadLetter: deadLetter,
				Params: map[string]string{}, Created: time.Now().UTC()}
			for _, kv := range kvs {
				d.Params[kv.Key] = kv.Value
			}
			if err := d.Validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			h, err := module.Hub(ctx, p)
			if err != nil {
				return err
			}
			defer h.Close()
			info, err := resolveModule(ctx, h, d.Name, file, ref)
			if err != nil {
				return err
			}
			d.Module, d.Digest, d.Kind = info.Ref(), info.Digest, info.Kind
			if old, err := h.Definition(ctx, d.Name); err == nil {
				d.Revision = old.Revision + 1
			}
			if err := prepareTopics(ctx, h, &d, from); err != nil {
				return err
			}
			if err := h.PutDefinition(ctx, d); err != nil {
				return err
			}
			return f.Print(cmd.OutOrStdout(), description{Definition: d})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&file, "module", "", "module file to deploy (published to the hub as NAME@0.0.0-DIGEST)")
	fl.StringVar(&ref, "module-ref", "", "published module to deploy, NAME@VERSION (or NAME for the newest)")
	fl.StringVar(&input, "input", "", "input topic")
	fl.StringArrayVar(&outputs, "output", nil, "output topic (repeatable; records choose one by position)")
	fl.StringArrayVar(&params, "param", nil, "module parameter, key=value (repeatable)")
	fl.StringVar(&onError, "on-error", hub.OnErrorSkip, "what a failed record does: skip, dead-letter or stop")
	fl.StringVar(&deadLetter, "dead-letter", "", "topic failed records go to with --on-error dead-letter (default NAME.dead-letter)")
	fl.StringVar(&from, "from", "end", "where to start on the input: beginning, or end (records produced from now on)")
	return cmd
}

// resolveModule publishes a module file under NAME@0.0.0-DIGEST (when
// file is given) and returns the module to use.
func resolveModule(ctx context.Context, h *hub.Client, name, file, ref string) (hub.ModuleInfo, error) {
	if file != "" {
		code, err := os.ReadFile(file)
		if err != nil {
			return hub.ModuleInfo{}, err
		}
		kind, err := module.Inspect(ctx, code)
		if err != nil {
			return hub.ModuleInfo{}, fmt.Errorf("%s: %w", file, err)
		}
		digest := wasm.Digest(code)
		info := hub.ModuleInfo{Name: name, Version: "0.0.0-" + digest[:12], Digest: digest, Kind: kind.String(),
			Description: "deployed from " + file, Published: time.Now().UTC()}
		if err := h.PublishModule(ctx, info, code); err != nil {
			return hub.ModuleInfo{}, err
		}
		ref = info.Ref()
	}
	info, _, err := h.Module(ctx, ref)
	return info, err
}

// prepareTopics checks the input exists, creates missing output and
// dead-letter topics, and resolves where the transform starts.
func prepareTopics(ctx context.Context, h *hub.Client, d *hub.Definition, from string) error {
	adm := kadm.NewClient(h.Kafka())
	md, err := adm.Metadata(ctx, d.Input)
	if err != nil {
		return err
	}
	in, ok := md.Topics[d.Input]
	if !ok || in.Err != nil {
		return fmt.Errorf("input topic %q does not exist", d.Input)
	}
	want := append([]string{}, d.Outputs...)
	if d.OnError == hub.OnErrorDeadLetter {
		want = append(want, d.DeadLetter)
	}
	for _, t := range want {
		res, err := adm.CreateTopic(ctx, -1, -1, nil, t)
		if err == nil {
			err = res.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create output topic %s: %w", t, err)
		}
	}
	d.StartOffsets, err = listOffsets(ctx, adm, d.Input, from == "end")
	return err
}

// listOffsets returns every partition's start or end offset. A partition
// left out would make the transform start it from offset 0, so any
// partition's error fails the deploy.
func listOffsets(ctx context.Context, adm *kadm.Client, topic string, end bool) (map[int32]int64, error) {
	offs, err := hub.ListOffsets(ctx, adm, topic, end)
	out := map[int32]int64{}
	if err == nil {
		offs.Each(func(o kadm.ListedOffset) {
			if o.Err != nil && err == nil {
				err = fmt.Errorf("offsets of %s/%d: %w", topic, o.Partition, o.Err)
			}
			out[o.Partition] = o.Offset
		})
	}
	return out, err
}

// description is `transform describe` (and what deploy prints).
type description struct {
	hub.Definition
	Partitions []partitionStatus `json:"partitions"`
}

type partitionStatus struct {
	hub.Status
	Lag int64 `json:"lag"`
}

func (d description) WriteText(w io.Writer) error {
	t := clientcmd.NewTable(w)
	t.Row("TRANSFORM", d.Name)
	t.Row("MODULE", d.Module+" ("+d.Kind+")")
	t.Row("INPUT", d.Input)
	t.Row("OUTPUTS", strings.Join(d.Outputs, ","))
	policy := d.OnError
	if d.OnError == hub.OnErrorDeadLetter {
		policy += " -> " + d.DeadLetter
	}
	t.Row("ON-ERROR", policy)
	if len(d.Params) > 0 {
		var ps []string
		for k, v := range d.Params {
			ps = append(ps, k+"="+v)
		}
		t.Row("PARAMS", strings.Join(ps, " "))
	}
	state := "active"
	if d.Paused {
		state = "paused"
	}
	t.Row("STATE", state)
	if err := t.Flush(); err != nil {
		return err
	}
	if len(d.Partitions) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	pt := clientcmd.NewTable(w, "PARTITION", "NODE", "STATE", "OFFSET", "LAG", "IN", "OUT", "ERRORS", "RATE/S", "LAST-ERROR")
	for _, s := range d.Partitions {
		last := s.LastError
		if last == "" {
			last = "-"
		}
		pt.Row(s.Partition, s.Node, s.State, s.Offset, s.Lag, s.RecordsIn, s.RecordsOut, s.Errors, fmt.Sprintf("%.0f", s.RateIn), last)
	}
	return pt.Flush()
}

func describe(ctx context.Context, h *hub.Client, name string) (description, error) {
	d, err := h.Definition(ctx, name)
	if err != nil {
		return description{}, err
	}
	ss, err := h.Statuses(ctx, name)
	if err != nil {
		return description{}, err
	}
	out := description{Definition: d, Partitions: []partitionStatus{}}
	for _, s := range ss {
		out.Partitions = append(out.Partitions, partitionStatus{Status: s, Lag: s.Lag()})
	}
	return out, nil
}

func newDescribe(p *clientcmd.Params, format *string) *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a transform and, per input partition, where it runs, its lag, throughput and errors",
		Args:  clientcmd.ExactArgs(1, "a transform name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := clientcmd.ParseFormat(*format)
			if err != nil {
				return err
			}
			h, err := module.Hub(cmd.Context(), p)
			if err != nil {
				return err
			}
			defer h.Close()
			d, err := describe(cmd.Context(), h, args[0])
			if err != nil {
				return err
			}
			return f.Print(cmd.OutOrStdout(), d)
		},
	}
}

type listRow struct {
	Name    string   `json:"name"`
	Module  string   `json:"module"`
	Input   string   `json:"input"`
	Outputs []string `json:"outputs"`
	State   string   `json:"state"`
	Lag     int64    `json:"lag"`
	RateIn  float64  `json:"rate_in"`
	Errors  int64    `json:"errors"`
}

type list []listRow

func (l list) WriteText(w io.Writer) error {
	t := clientcmd.NewTable(w, "NAME", "MODULE", "INPUT", "OUTPUTS", "STATE", "LAG", "RATE/S", "ERRORS")
	for _, r := range l {
		t.Row(r.Name, r.Module, r.Input, strings.Join(r.Outputs, ","), r.State, r.Lag, fmt.Sprintf("%.0f", r.RateIn), r.Errors)
	}
	return t.Flush()
}

func newList(p *clientcmd.Params, format *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List deployed transforms with their state, lag and throughput",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := clientcmd.ParseFormat(*format)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			h, err := module.Hub(ctx, p)
			if err != nil {
				return err
			}
			defer h.Close()
			defs, err := h.Definitions(ctx)
			if err != nil {
				return err
			}
			ss, err := h.Statuses(ctx, "")
			if err != nil {
				return err
			}
			out := list{}
			for _, d := range defs {
				r := listRow{Name: d.Name, Module: d.Module, Input: d.Input, Outputs: d.Outputs, State: "starting"}
				if d.Paused {
					r.State = "paused"
				}
				failed := false
				for _, s := range ss {
					if s.Transform != d.Name {
						continue
					}
					if !d.Paused {
						r.State = "running"
					}
					failed = failed || s.State == "failed"
					r.Lag += s.Lag()
					r.RateIn += s.RateIn
					r.Errors += s.Errors
				}
				if failed {
					r.State = "failed"
				}
				out = append(out, r)
			}
			return f.Print(cmd.OutOrStdout(), out)
		},
	}
}

func newSetPaused(p *clientcmd.Params, pause bool) *cobra.Command {
	use, short := "resume NAME", "Resume a paused transform (also restarts one its error policy stopped)"
	if pause {
		use, short = "pause NAME", "Pause a transform: it keeps its progress and resumes where it stopped"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  clientcmd.ExactArgs(1, "a transform name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			h, err := module.Hub(ctx, p)
			if err != nil {
				return err
			}
			defer h.Close()
			d, err := h.Definition(ctx, args[0])
			if err != nil {
				return err
			}
			d.Paused = pause
			d.Revision++
			if err := h.PutDefinition(ctx, d); err != nil {
				return err
			}
			verb := "resumed"
			if pause {
				verb = "paused"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", verb, d.Name)
			return nil
		},
	}
}

func newDelete(p *clientcmd.Params) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Stop a transform and forget its progress (its output topics stay)",
		Args:  clientcmd.ExactArgs(1, "a transform name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := module.WithHub(cmd, p, func(ctx context.Context, h *hub.Client) error { return h.DeleteDefinition(ctx, args[0]) }); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", args[0])
			return nil
		},
	}
}

type logView []hub.LogLine

func (l logView) WriteText(w io.Writer) error {
	for _, line := range l {
		if _, err := fmt.Fprintf(w, "%s p%d n%d %s\n", line.Time.Format(time.RFC3339Nano), line.Partition, line.Node, line.Line); err != nil {
			return err
		}
	}
	return nil
}

func newLogs(p *clientcmd.Params, format *string) *cobra.Command {
	var n int
	cmd := &cobra.Command{
		Use:   "logs NAME [-n LINES]",
		Short: "Print what a transform's module logged and why it stopped, if it did",
		Args:  clientcmd.ExactArgs(1, "a transform name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return module.PrintFromHub(cmd, p, format, func(ctx context.Context, h *hub.Client) (clientcmd.Texter, error) {
				lines, err := h.Logs(ctx, args[0], n)
				return append(logView{}, lines...), err
			})
		},
	}
	cmd.Flags().IntVarP(&n, "num", "n", 100, "how many of the last lines (0 for all)")
	return cmd
}

// NewView returns `weir view`: lazy views, read-only topics computed at
// fetch time.
func NewView(p *clientcmd.Params) *cobra.Command {
	var format string
	return clientcmd.Noun(p, &format, &cobra.Command{
		Use:     "view",
		Aliases: []string{"views"},
		Short:   "Create read-only topics whose records a filter or map module computes when they are read",
	}, newViewCreate(p, &format), newViewList(p, &format), newViewDelete(p))
}

func newViewCreate(p *clientcmd.Params, format *string) *cobra.Command {
	var from, file, ref string
	var params []string
	cmd := &cobra.Command{
		Use:   "create NAME --from TOPIC (--module FILE.wasm | --module-ref NAME@VERSION) [--param k=v…]",
		Short: "Create a view: any Kafka client reads it like a topic; offsets are the source's, filtered records leave gaps",
		Args:  clientcmd.ExactArgs(1, "a view name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := clientcmd.ParseFormat(*format)
			if err != nil {
				return err
			}
			if (file == "") == (ref == "") {
				return errors.New("give one of --module FILE.wasm or --module-ref NAME@VERSION")
			}
			if from == "" {
				return errors.New("--from TOPIC is required")
			}
			kvs, err := clientcmd.ParseKVs("--param", params)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			h, err := module.Hub(ctx, p)
			if err != nil {
				return err
			}
			defer h.Close()
			adm := kadm.NewClient(h.Kafka())
			md, err := adm.Metadata(ctx, from, args[0])
			if err != nil {
				return err
			}
			if t, ok := md.Topics[from]; !ok || t.Err != nil {
				return fmt.Errorf("source topic %q does not exist", from)
			}
			if t, ok := md.Topics[args[0]]; ok && t.Err == nil {
				return fmt.Errorf("%q is already a topic or view", args[0])
			}
			info, err := resolveModule(ctx, h, args[0], file, ref)
			if err != nil {
				return err
			}
			v := hub.View{Name: args[0], Source: from, Module: info.Ref(), Digest: info.Digest, Kind: info.Kind,
				Params: map[string]string{}, Created: time.Now().UTC()}
			for _, kv := range kvs {
				v.Params[kv.Key] = kv.Value
			}
			if err := h.PutView(ctx, v); err != nil {
				return err
			}
			return f.Print(cmd.OutOrStdout(), viewList{v})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "source topic")
	cmd.Flags().StringVar(&file, "module", "", "filter or map module file (published to the hub as NAME@0.0.0-DIGEST)")
	cmd.Flags().StringVar(&ref, "module-ref", "", "published module, NAME@VERSION")
	cmd.Flags().StringArrayVar(&params, "param", nil, "module parameter, key=value (repeatable)")
	return cmd
}

type viewList []hub.View

func (l viewList) WriteText(w io.Writer) error {
	t := clientcmd.NewTable(w, "VIEW", "FROM", "MODULE", "KIND")
	for _, v := range l {
		t.Row(v.Name, v.Source, v.Module, v.Kind)
	}
	return t.Flush()
}

func newViewList(p *clientcmd.Params, format *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List views",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return module.PrintFromHub(cmd, p, format, func(ctx context.Context, h *hub.Client) (clientcmd.Texter, error) {
				vs, err := h.Views(ctx)
				return append(viewList{}, vs...), err
			})
		},
	}
}

func newViewDelete(p *clientcmd.Params) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a view (its source topic is untouched)",
		Args:  clientcmd.ExactArgs(1, "a view name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := module.WithHub(cmd, p, func(ctx context.Context, h *hub.Client) error { return h.DeleteView(ctx, args[0]) }); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted view %s\n", args[0])
			return nil
		},
	}
}
