// Package consume is `weir consume`: read a topic's records, by direct
// partition assignment or as a member of a consumer group, and print them as
// text, JSON or a kcat-like template.
package consume

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

type options struct {
	offset     string
	partitions []int32
	num        int
	follow     bool
	format     string
	group      string
	transform  string
	params     []string
}

// New returns `weir consume`.
func New(p *clientcmd.Params) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print a topic's records",
		Long: `Print a topic's records, one per line by default.

Without --follow it stops once every partition reached the high watermark it
had when the command started, so on an empty topic it exits at once. With
--follow it keeps waiting for new records until interrupted.

With --group it consumes as a member of that consumer group: the group
assigns the partitions, and each starts at the group's committed offset. The
offsets of the records printed are committed after every batch and on exit
(records fetched but not printed, past -n, are not), so the next run with the
same group goes on where this one stopped. A group member keeps following
until -n records were printed or it is interrupted; it then leaves the group.
--partition cannot be used with --group, and --offset only says where
partitions without a committed offset start: beginning or end.

--offset chooses where each partition starts:
  beginning   the oldest record (default)
  end         only records produced from now on (useful with --follow)
  N           offset N
  -N          the last N records of each partition
  @T          the first record at or after time T: unix milliseconds or
              RFC 3339 (@2024-05-01T12:00:00Z)

--format is text (the value), json (one object per record: topic,
partition, offset, timestamp, key, value, headers) or a template:
  %k key  %v value  %h headers (k=v,k=v)  %o offset  %p partition
  %t timestamp (unix ms)  %T topic  %% percent  \n newline  \t tab`,
		Example: `  weir consume events -n 10
  weir consume events --offset -5 -p 0,1 --format '%p:%o %k=%v\n'
  weir consume events --offset @2024-05-01T00:00:00Z --format json
  weir consume events --offset end --follow
  weir consume events --group audit -n 100`,
		Args: clientcmd.ExactArgs(1, "one TOPIC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd, p, &o, args[0])
		},
	}
	fs := cmd.Flags()
	p.AddConnFlags(fs)
	fs.StringVarP(&o.offset, "offset", "o", "beginning", "where to start: beginning, end, N, -N or @TIME")
	fs.Int32SliceVarP(&o.partitions, "partition", "p", nil, "partitions to read, repeatable or comma-separated (default all)")
	fs.IntVarP(&o.num, "num", "n", 0, "stop after this many records (default no limit)")
	fs.BoolVarP(&o.follow, "follow", "f", false, "keep waiting for new records")
	fs.StringVar(&o.format, "format", "text", "text, json, or a template such as '%k=%v\\n'")
	fs.StringVarP(&o.group, "group", "g", "", "consume as a member of this consumer group, committing the offsets of printed records")
	fs.StringVar(&o.transform, "transform", "", "run this WebAssembly module over each record and print what it emits instead")
	fs.StringArrayVar(&o.params, "param", nil, "with --transform, a module parameter key=value (repeatable)")
	return cmd
}

func run(cmd *cobra.Command, p *clientcmd.Params, o *options, topic string) error {
	format, err := parseRecordFormat(o.format)
	if err != nil {
		return err
	}
	spec, err := parseOffset(o.offset)
	if err != nil {
		return err
	}
	if o.num < 0 {
		return fmt.Errorf("--num must be 0 (no limit) or more, not %d", o.num)
	}
	var xf *readTransform
	if o.transform != "" {
		params, err := clientcmd.ParseKVs("--param", o.params)
		if err != nil {
			return err
		}
		if xf, err = newReadTransform(cmd.Context(), o.transform, topic, params, cmd.ErrOrStderr()); err != nil {
			return err
		}
		defer xf.close(cmd.Context())
	} else if len(o.params) > 0 {
		return errors.New("--param needs --transform")
	}
	if o.group != "" {
		return runGroup(cmd, p, o, topic, format, spec, xf)
	}
	ctx := cmd.Context()
	if o.follow {
		// Following ends with ^C; that is the normal way out, not an error.
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}

	starts, stops, err := plan(ctx, p, topic, o.partitions, spec, o.follow)
	if err != nil || len(starts) == 0 {
		return err
	}
	offsets := make(map[int32]kgo.Offset, len(starts))
	for part, off := range starts {
		offsets[part] = kgo.NewOffset().At(off)
	}
	cl, err := p.Client(ctx,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		// Control records come through (and are not printed) so that a
		// partition ending in them is seen to end.
		kgo.KeepControlRecords(),
		// If retention removes records under a follower, carry on from the
		// oldest remaining one.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return err
	}
	defer cl.Close()

	c := &consumer{
		cl:     cl,
		topic:  topic,
		format: format,
		out:    bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10),
		warn:   cmd.ErrOrStderr(),
		stops:  stops,
		limit:  o.num,
		follow: o.follow,
		p:      p,
		xf:     xf,
	}
	err = c.loop(ctx)
	if ferr := c.out.Flush(); err == nil {
		err = ferr
	}
	return err
}

// plan lists the topic's partitions and offsets and decides where each
// selected partition starts and, unless following, the offset it stops
// before. Partitions with nothing to read are left out.
func plan(ctx context.Context, p *clientcmd.Params, topic string, selected []int32, spec offsetSpec, follow bool) (starts, stops map[int32]int64, err error) {
	adm, err := p.Admin(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer adm.Close()
	rctx, cancel := p.RequestContext(ctx)
	defer cancel()

	tds, err := adm.ListTopics(rctx, topic)
	if err != nil {
		return nil, nil, fmt.Errorf("describe topic %q: %w", topic, err)
	}
	td := tds[topic]
	if err := clientcmd.KafkaErr(topic, td.Err, ""); err != nil {
		return nil, nil, err
	}
	all := td.Partitions.Numbers()
	slices.Sort(all)
	parts, err := selectPartitions(topic, all, selected)
	if err != nil {
		return nil, nil, err
	}

	lists := []struct {
		what string
		list func(context.Context, ...string) (kadm.ListedOffsets, error)
		set  func(*partitionBounds, int64)
	}{
		{"log start offsets", adm.ListStartOffsets, func(b *partitionBounds, o int64) { b.logStart = o }},
		{"high watermarks", adm.ListEndOffsets, func(b *partitionBounds, o int64) { b.highWatermark = o }},
	}
	if spec.kind == fromTimestamp {
		lists = append(lists, struct {
			what string
			list func(context.Context, ...string) (kadm.ListedOffsets, error)
			set  func(*partitionBounds, int64)
		}{"offsets by time", func(ctx context.Context, ts ...string) (kadm.ListedOffsets, error) {
			return adm.ListOffsetsAfterMilli(ctx, spec.n, ts...)
		}, func(b *partitionBounds, o int64) { b.atTime = o }})
	}
	bounds := make(map[int32]*partitionBounds, len(parts))
	for _, part := range parts {
		bounds[part] = &partitionBounds{atTime: -1}
	}
	for _, l := range lists {
		listed, err := l.list(rctx, topic)
		if err != nil {
			return nil, nil, fmt.Errorf("list %s of %q: %w", l.what, topic, err)
		}
		for _, part := range parts {
			lo, ok := listed.Lookup(topic, part)
			if !ok {
				return nil, nil, fmt.Errorf("list %s of %q: no answer for partition %d", l.what, topic, part)
			}
			if lo.Err != nil {
				return nil, nil, fmt.Errorf("list %s of %s[%d]: %w", l.what, topic, part, clientcmd.KafkaErr(topic, lo.Err, ""))
			}
			l.set(bounds[part], lo.Offset)
		}
	}

	starts, stops = map[int32]int64{}, map[int32]int64{}
	for _, part := range parts {
		b := *bounds[part]
		start := spec.start(b)
		if follow {
			starts[part] = start
		} else if start < b.highWatermark {
			starts[part], stops[part] = start, b.highWatermark
		}
	}
	return starts, stops, nil
}

func selectPartitions(topic string, all, selected []int32) ([]int32, error) {
	if len(selected) == 0 {
		return all, nil
	}
	var out []int32
	for _, part := range selected {
		if !slices.Contains(all, part) {
			return nil, fmt.Errorf("topic %q has no partition %d (it has %s)", topic, part, partitionRange(all))
		}
		if !slices.Contains(out, part) {
			out = append(out, part)
		}
	}
	slices.Sort(out)
	return out, nil
}

func partitionRange(all []int32) string {
	switch len(all) {
	case 0:
		return "none"
	case 1:
		return fmt.Sprintf("only partition %d", all[0])
	}
	return fmt.Sprintf("partitions %d-%d", all[0], all[len(all)-1])
}

type consumer struct {
	cl     *kgo.Client
	topic  string
	format recordFormat
	out    *bufio.Writer
	warn   io.Writer
	// stops holds, for each partition not yet done, the high watermark it
	// had at the start; unused when following.
	stops  map[int32]int64
	limit  int
	follow bool
	p      *clientcmd.Params
	// group is set when consuming as a group member; printed then holds,
	// per partition, the last record printed and not yet committed.
	group   string
	printed map[int32]*kgo.Record

	count int
	buf   []byte
	xf    *readTransform // nil without --transform
}

func (c *consumer) loop(ctx context.Context) error {
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if !c.follow {
			// Everything below the high watermarks is already on the
			// broker, so a long silence means something is wrong.
			pctx, cancel = c.p.RequestContext(ctx)
		}
		fetches := c.cl.PollFetches(pctx)
		cancel()
		if err := c.fetchErr(ctx, pctx, fetches); err != nil || ctx.Err() != nil {
			return err
		}
		done, err := c.print(fetches)
		if err != nil {
			return err
		}
		// Only what reached the output is committed.
		if err := c.out.Flush(); err != nil {
			return err
		}
		if err := c.commit(ctx); err != nil || done {
			return err
		}
	}
}

// print writes the fetched records and says whether the command is done.
func (c *consumer) print(fetches kgo.Fetches) (bool, error) {
	for it := fetches.RecordIter(); !it.Done(); {
		r := it.Next()
		if !c.follow {
			stop, pending := c.stops[r.Partition]
			if !pending || r.Offset >= stop {
				continue // produced after the command started
			}
		}
		if r.Attrs.IsControl() {
			// Control records (transaction markers, a cluster's own
			// entries) are not printed, but they can be a partition's
			// last offsets: only they tell that the end is reached.
			if !c.follow && r.Offset+1 >= c.stops[r.Partition] {
				c.finish(r.Partition)
				if len(c.stops) == 0 {
					return true, nil
				}
			}
			continue
		}
		if c.xf != nil {
			outs, err := c.xf.apply(context.Background(), r)
			if err != nil {
				return true, err
			}
			c.buf = c.buf[:0]
			for _, o := range outs {
				c.buf = c.format.appendRecord(c.buf, o)
			}
		} else {
			c.buf = c.format.appendRecord(c.buf[:0], r)
		}
		if _, err := c.out.Write(c.buf); err != nil {
			return true, err
		}
		c.count++
		if c.printed != nil {
			c.printed[r.Partition] = r
		}
		if c.limit > 0 && c.count >= c.limit {
			return true, nil
		}
		if !c.follow && r.Offset+1 >= c.stops[r.Partition] {
			c.finish(r.Partition)
			if len(c.stops) == 0 {
				return true, nil
			}
		}
	}
	return false, nil
}

// finish stops reading a partition that reached its stop offset.
func (c *consumer) finish(partition int32) {
	delete(c.stops, partition)
	c.cl.PauseFetchPartitions(map[string][]int32{c.topic: {partition}})
}

func (c *consumer) fetchErr(ctx, pctx context.Context, fetches kgo.Fetches) error {
	for _, fe := range fetches.Errors() {
		var lost *kgo.ErrDataLoss
		switch {
		case errors.As(fe.Err, &lost):
			// The client already moved on; the user should know records
			// were skipped, but this is not fatal.
			fmt.Fprintf(c.warn, "weir: warning: %v\n", fe.Err)
		case ctx.Err() != nil:
			return nil // interrupted while following
		case pctx.Err() != nil:
			return fmt.Errorf("consume %s: no records within %s although %s not reached the high watermark", c.topic, c.p.Timeout, c.pendingPartitions())
		case fe.Partition < 0:
			return fmt.Errorf("consume %s: %w", c.topic, clientcmd.KafkaErr(c.topic, fe.Err, ""))
		default:
			return fmt.Errorf("consume %s[%d]: %w", fe.Topic, fe.Partition, clientcmd.KafkaErr(c.topic, fe.Err, ""))
		}
	}
	return nil
}

func (c *consumer) pendingPartitions() string {
	var nums []int32
	for part := range c.stops {
		nums = append(nums, part)
	}
	slices.Sort(nums)
	parts := make([]string, len(nums))
	for i, n := range nums {
		parts[i] = fmt.Sprint(n)
	}
	if len(parts) == 1 {
		return "partition " + parts[0] + " has"
	}
	return "partitions " + strings.Join(parts, ",") + " have"
}
