package consume

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// runGroup consumes as a member of a consumer group. Offsets are committed
// by hand, after the records are written out, and rebalances wait until
// then (BlockRebalanceOnPoll), so a commit never covers a record that was
// not printed nor a partition the member no longer owns.
func runGroup(cmd *cobra.Command, p *clientcmd.Params, o *options, topic string, format recordFormat, spec offsetSpec, xf *readTransform) error {
	if len(o.partitions) > 0 {
		return fmt.Errorf("--partition cannot be used with --group: the group assigns the partitions")
	}
	var reset kgo.Offset
	switch spec.kind {
	case fromBeginning:
		reset = kgo.NewOffset().AtStart()
	case fromEnd:
		reset = kgo.NewOffset().AtEnd()
	default:
		return fmt.Errorf("--offset %q cannot be used with --group: give beginning or end (where partitions without a committed offset start), or move the group with weir group reset-offsets", o.offset)
	}
	// A group member follows until interrupted; ^C is the normal way out.
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := checkTopic(ctx, p, topic); err != nil {
		return err
	}
	cl, err := p.Client(ctx,
		kgo.ConsumerGroup(o.group),
		kgo.ConsumeTopics(topic),
		kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(reset),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// After an assignment, partitions with a committed offset and those
		// reset to beginning or end become ready one by one, and a fetch
		// already waiting on the first ones does not take in the others
		// until it returns: a shorter wait keeps that from holding up the
		// first records for the default 5s.
		kgo.FetchMaxWait(time.Second),
	)
	if err != nil {
		return err
	}
	defer cl.Close()

	c := &consumer{
		cl:      cl,
		topic:   topic,
		format:  format,
		out:     bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10),
		warn:    cmd.ErrOrStderr(),
		limit:   o.num,
		follow:  true,
		p:       p,
		group:   o.group,
		printed: map[int32]*kgo.Record{},
		xf:      xf,
	}
	err = c.loop(ctx)
	if ferr := c.out.Flush(); err == nil {
		err = ferr
		if err == nil {
			err = c.commit(ctx)
		}
	}
	// Leave now rather than by session timeout, so that the partitions
	// go to the other members at once; an interrupt does not cut it short.
	cl.AllowRebalance()
	lctx, cancel := p.RequestContext(context.WithoutCancel(ctx))
	defer cancel()
	if lerr := cl.LeaveGroupContext(lctx); err == nil && lerr != nil {
		err = fmt.Errorf("leave group %q: %w", o.group, clientcmd.KafkaErr("", lerr, ""))
	}
	return err
}

// commit commits the offsets after the records printed since the last
// commit, then lets a pending rebalance go ahead. It is not cut short by an
// interrupt: what was printed should be committed.
func (c *consumer) commit(ctx context.Context) error {
	if c.group == "" {
		return nil
	}
	defer c.cl.AllowRebalance()
	if len(c.printed) == 0 {
		return nil
	}
	recs := make([]*kgo.Record, 0, len(c.printed))
	for _, r := range c.printed {
		recs = append(recs, r)
	}
	cctx, cancel := c.p.RequestContext(context.WithoutCancel(ctx))
	defer cancel()
	if err := c.cl.CommitRecords(cctx, recs...); err != nil {
		return fmt.Errorf("commit offsets of group %q: %w", c.group, clientcmd.KafkaErr("", err, ""))
	}
	clear(c.printed)
	return nil
}

// checkTopic fails for a topic the broker does not have: a group member
// would otherwise wait for it forever.
func checkTopic(ctx context.Context, p *clientcmd.Params, topic string) error {
	adm, err := p.Admin(ctx)
	if err != nil {
		return err
	}
	defer adm.Close()
	rctx, cancel := p.RequestContext(ctx)
	defer cancel()
	tds, err := adm.ListTopics(rctx, topic)
	if err != nil {
		return fmt.Errorf("describe topic %q: %w", topic, err)
	}
	return clientcmd.KafkaErr(topic, tds[topic].Err, "")
}
