package group

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// resetKind is where reset-offsets moves each partition.
type resetKind int

const (
	toEarliest resetKind = iota
	toLatest
	toOffset
	toDatetime
	shiftBy
)

// resetSpec is the parsed --to-*/--shift-by choice.
type resetSpec struct {
	kind resetKind
	n    int64 // the offset, unix milliseconds, or the shift
}

type resetOptions struct {
	topics     []string
	allTopics  bool
	toEarliest bool
	toLatest   bool
	toOffset   int64
	toDatetime string
	shiftBy    int64
	execute    bool
}

// NewResetOffsets returns `weir group reset-offsets`.
func NewResetOffsets(p *clientcmd.Params, format *string) *cobra.Command {
	var o resetOptions
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP (--topic T[:P,P...]... | --all-topics) (--to-earliest | --to-latest | --to-offset N | --to-datetime TIME | --shift-by N) [--execute]",
		Short: "Plan or commit new offsets for a group that has no active members",
		Long: `Move a consumer group's committed offsets. Without --execute this is a dry
run: it prints the offsets it would commit and changes nothing.

As in Kafka, offsets can only be reset while the group has no members; stop
its consumers first.

--topic T resets every partition of T, --topic T:0,2 only partitions 0 and 2;
it can be repeated. --all-topics resets every partition the group has
committed offsets for.

The new offset of each partition is one of:
  --to-earliest     the log start offset
  --to-latest       the log end offset (high watermark)
  --to-offset N     offset N
  --to-datetime T   the first record at or after T (unix milliseconds or
                    RFC 3339, 2024-05-01T12:00:00Z); the log end if none
  --shift-by N      the committed offset moved by N (negative: back); the
                    partition must have a committed offset
and is kept between the log start and end offsets.`,
		Example: `  weir group reset-offsets billing --topic orders --to-earliest
  weir group reset-offsets billing --topic orders:0,1 --shift-by -100 --execute
  weir group reset-offsets billing --all-topics --to-datetime 2024-05-01T00:00:00Z --execute`,
		Args: clientcmd.ExactArgs(1, "one GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := clientcmd.ParseFormat(*format)
			if err != nil {
				return err
			}
			spec, err := o.spec(cmd)
			if err != nil {
				return err
			}
			selected, err := o.selection()
			if err != nil {
				return err
			}
			adm, err := p.Admin(cmd.Context())
			if err != nil {
				return err
			}
			defer adm.Close()
			ctx, cancel := p.RequestContext(cmd.Context())
			defer cancel()
			res, err := resetOffsets(ctx, adm, args[0], selected, spec, o.execute)
			if err != nil {
				return err
			}
			return f.Print(cmd.OutOrStdout(), res)
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&o.topics, "topic", nil, "topic to reset, optionally with partitions: T or T:0,1 (repeatable)")
	fs.BoolVar(&o.allTopics, "all-topics", false, "reset every partition the group has committed offsets for")
	fs.BoolVar(&o.toEarliest, "to-earliest", false, "reset to the log start offset")
	fs.BoolVar(&o.toLatest, "to-latest", false, "reset to the log end offset")
	fs.Int64Var(&o.toOffset, "to-offset", 0, "reset to this offset")
	fs.StringVar(&o.toDatetime, "to-datetime", "", "reset to the first record at or after this time (unix ms or RFC 3339)")
	fs.Int64Var(&o.shiftBy, "shift-by", 0, "move the committed offset by this many records (negative: back)")
	fs.BoolVar(&o.execute, "execute", false, "commit the new offsets (default: dry run, only print them)")
	return cmd
}

func (o *resetOptions) spec(cmd *cobra.Command) (resetSpec, error) {
	var chosen []resetSpec
	fs := cmd.Flags()
	if o.toEarliest {
		chosen = append(chosen, resetSpec{kind: toEarliest})
	}
	if o.toLatest {
		chosen = append(chosen, resetSpec{kind: toLatest})
	}
	if fs.Changed("to-offset") {
		if o.toOffset < 0 {
			return resetSpec{}, fmt.Errorf("--to-offset must be 0 or more, not %d", o.toOffset)
		}
		chosen = append(chosen, resetSpec{kind: toOffset, n: o.toOffset})
	}
	if fs.Changed("to-datetime") {
		ms, err := parseTime(o.toDatetime)
		if err != nil {
			return resetSpec{}, err
		}
		chosen = append(chosen, resetSpec{kind: toDatetime, n: ms})
	}
	if fs.Changed("shift-by") {
		chosen = append(chosen, resetSpec{kind: shiftBy, n: o.shiftBy})
	}
	if len(chosen) != 1 {
		return resetSpec{}, errors.New("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime and --shift-by")
	}
	return chosen[0], nil
}

// parseTime reads --to-datetime: unix milliseconds or RFC 3339.
func parseTime(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms >= 0 {
		return ms, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil && t.UnixMilli() >= 0 {
		return t.UnixMilli(), nil
	}
	return 0, fmt.Errorf("--to-datetime %q is not unix milliseconds or an RFC 3339 time such as 2024-05-01T12:00:00Z", s)
}

// selection is what --topic asked for: topic to partitions, nil meaning all
// of them. A nil map means --all-topics.
func (o *resetOptions) selection() (map[string][]int32, error) {
	switch {
	case o.allTopics && len(o.topics) > 0:
		return nil, errors.New("give either --topic or --all-topics, not both")
	case o.allTopics:
		return nil, nil
	case len(o.topics) == 0:
		return nil, errors.New("give the topics to reset with --topic T[:P,P...] or --all-topics")
	}
	sel := map[string][]int32{}
	for _, s := range o.topics {
		topic, parts, err := parseTopicPartitions(s)
		if err != nil {
			return nil, err
		}
		prev, seen := sel[topic]
		switch {
		case !seen:
			sel[topic] = parts
		case prev == nil || parts == nil:
			sel[topic] = nil // all partitions wins
		default:
			for _, p := range parts {
				if !slices.Contains(prev, p) {
					prev = append(prev, p)
				}
			}
			sel[topic] = prev
		}
	}
	return sel, nil
}

// parseTopicPartitions reads T or T:0,1,2. Kafka topic names cannot
// contain ':'.
func parseTopicPartitions(s string) (string, []int32, error) {
	topic, list, hasList := strings.Cut(s, ":")
	if topic == "" {
		return "", nil, fmt.Errorf("--topic %q has no topic name", s)
	}
	if !hasList {
		return topic, nil, nil
	}
	var parts []int32
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil || n < 0 {
			return "", nil, fmt.Errorf("--topic %q: %q is not a partition number", s, f)
		}
		if !slices.Contains(parts, int32(n)) {
			parts = append(parts, int32(n))
		}
	}
	return topic, parts, nil
}

// resetOffsets plans the new offsets and, with execute, commits them.
func resetOffsets(ctx context.Context, adm *kadm.Client, group string, selected map[string][]int32, spec resetSpec, execute bool) (resetResult, error) {
	res := resetResult{Group: group, Executed: execute, Offsets: []resetRow{}}
	ds, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return res, fmt.Errorf("describe group %q: %w", group, err)
	}
	d, ok := ds[group]
	if !ok {
		return res, fmt.Errorf("describe group %q: the broker did not answer for it", group)
	}
	if d.Err != nil {
		return res, describeErr(group, groupErr(group, d.Err, d.ErrMessage))
	}
	if len(d.Members) > 0 || (d.State != "Empty" && d.State != "Dead") {
		return res, &ActiveError{Group: group, What: "reset offsets of", State: d.State, Members: len(d.Members)}
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return res, fmt.Errorf("fetch offsets of group %q: %w", group, groupErr(group, err, ""))
	}
	if selected == nil {
		selected = map[string][]int32{}
		for _, o := range committed.Sorted() {
			if o.Err == nil && o.At >= 0 {
				selected[o.Topic] = append(selected[o.Topic], o.Partition)
			}
		}
		if len(selected) == 0 {
			return res, fmt.Errorf("group %q has no committed offsets for --all-topics to reset", group)
		}
	}
	topics := make([]string, 0, len(selected))
	for t := range selected {
		topics = append(topics, t)
	}
	slices.Sort(topics)

	tds, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return res, fmt.Errorf("describe topics: %w", err)
	}
	type tp struct {
		topic string
		part  int32
	}
	var plan []tp
	for _, t := range topics {
		td, ok := tds[t]
		if !ok {
			return res, &clientcmd.UnknownTopicError{Topic: t}
		}
		if err := clientcmd.KafkaErr(t, td.Err, ""); err != nil {
			return res, err
		}
		all := td.Partitions.Numbers()
		slices.Sort(all)
		parts := selected[t]
		if parts == nil {
			parts = all
		}
		for _, p := range parts {
			if !slices.Contains(all, p) {
				return res, fmt.Errorf("topic %q has no partition %d (it has %d partitions)", t, p, len(all))
			}
		}
		parts = slices.Clone(parts)
		slices.Sort(parts)
		for _, p := range parts {
			plan = append(plan, tp{t, p})
		}
	}

	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return res, fmt.Errorf("list log start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return res, fmt.Errorf("list log end offsets: %w", err)
	}
	var atTime kadm.ListedOffsets
	if spec.kind == toDatetime {
		if atTime, err = adm.ListOffsetsAfterMilli(ctx, spec.n, topics...); err != nil {
			return res, fmt.Errorf("list offsets by time: %w", err)
		}
	}
	lookup := func(what string, l kadm.ListedOffsets, t string, p int32) (int64, error) {
		o, ok := l.Lookup(t, p)
		if !ok {
			return 0, fmt.Errorf("list %s of %s[%d]: no answer for it", what, t, p)
		}
		if o.Err != nil {
			return 0, fmt.Errorf("list %s of %s[%d]: %w", what, t, p, clientcmd.KafkaErr(t, o.Err, ""))
		}
		return o.Offset, nil
	}

	commit := kadm.Offsets{}
	for _, x := range plan {
		row := resetRow{Topic: x.topic, Partition: x.part}
		if c, ok := committed.Lookup(x.topic, x.part); ok && c.Err == nil && c.At >= 0 {
			at := c.At
			row.CurrentOffset = &at
		}
		start, err := lookup("log start offset", starts, x.topic, x.part)
		if err != nil {
			return res, err
		}
		end, err := lookup("log end offset", ends, x.topic, x.part)
		if err != nil {
			return res, err
		}
		var target int64
		switch spec.kind {
		case toEarliest:
			target = start
		case toLatest:
			target = end
		case toOffset:
			target = spec.n
		case toDatetime:
			if target, err = lookup("offset by time", atTime, x.topic, x.part); err != nil {
				return res, err
			}
			if target < 0 {
				target = end // no record at or after the time
			}
		case shiftBy:
			if row.CurrentOffset == nil {
				return res, fmt.Errorf("cannot shift %s[%d]: group %q has no committed offset for it", x.topic, x.part, group)
			}
			target = *row.CurrentOffset + spec.n
		}
		row.NewOffset = min(max(target, start), end)
		res.Offsets = append(res.Offsets, row)
		commit.Add(kadm.Offset{Topic: x.topic, Partition: x.part, At: row.NewOffset, LeaderEpoch: -1})
	}
	if !execute {
		return res, nil
	}

	resps, err := adm.CommitOffsets(ctx, group, commit)
	if err != nil {
		return res, fmt.Errorf("commit offsets of group %q: %w", group, commitErr(group, err))
	}
	var errs []error
	for _, r := range res.Offsets {
		c, ok := resps.Lookup(r.Topic, r.Partition)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("commit offset of %s[%d]: the broker did not answer for it", r.Topic, r.Partition))
		case c.Err != nil:
			err := commitErr(group, c.Err)
			var active *ActiveError
			if errors.As(err, &active) {
				// A member joined after the check above; one line says it.
				return res, err
			}
			errs = append(errs, fmt.Errorf("commit offset of %s[%d]: %w", r.Topic, r.Partition, clientcmd.KafkaErr(r.Topic, err, "")))
		}
	}
	return res, errors.Join(errs...)
}

// commitErr recognises the answers a commit without a generation gets when
// the group gained members meanwhile.
func commitErr(group string, err error) error {
	for _, e := range []*kerr.Error{kerr.UnknownMemberID, kerr.IllegalGeneration, kerr.RebalanceInProgress} {
		if errors.Is(err, e) {
			return &ActiveError{Group: group, What: "reset offsets of"}
		}
	}
	return err
}

type resetRow struct {
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	CurrentOffset *int64 `json:"current_offset"`
	NewOffset     int64  `json:"new_offset"`
}

type resetResult struct {
	Group    string     `json:"group"`
	Executed bool       `json:"executed"`
	Offsets  []resetRow `json:"offsets"`
}

func (r resetResult) WriteText(w io.Writer) error {
	status := "offsets committed"
	if !r.Executed {
		status = "dry run, nothing committed (add --execute to commit these offsets)"
	}
	fmt.Fprintf(w, "group %s: %s\n", r.Group, status)
	t := clientcmd.NewTable(w, "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET")
	for _, o := range r.Offsets {
		t.Row(o.Topic, o.Partition, optInt(o.CurrentOffset), o.NewOffset)
	}
	return t.Flush()
}
