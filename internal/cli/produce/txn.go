package produce

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// txnState is the progress of a --transactional-id run.
type txnState struct {
	batch   int           // records per transaction; 0: one for everything
	timeout time.Duration // bounds ending a transaction after an interrupt

	open             int   // records produced in the open transaction
	committed        int64 // transactions committed
	committedRecords int64
}

// run produces the input, inside transactions with --transactional-id.
func (pr *producer) run(ctx context.Context, lines *lineReader, inName string) error {
	if pr.txn == nil {
		return pr.produceLines(ctx, lines, inName, nil)
	}
	if err := pr.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	err := pr.produceLines(ctx, lines, inName, pr.maybeCommit)
	if err == nil {
		err = pr.commit(ctx)
	}
	if err != nil {
		return pr.abort(ctx, err)
	}
	return nil
}

// maybeCommit commits the open transaction once it holds --txn-batch
// records, and begins the next.
func (pr *producer) maybeCommit(ctx context.Context) error {
	pr.txn.open++
	if pr.txn.batch == 0 || pr.txn.open < pr.txn.batch {
		return nil
	}
	if err := pr.commit(ctx); err != nil {
		return err
	}
	if err := pr.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	return nil
}

// commit waits for the open transaction's records and commits it.
func (pr *producer) commit(ctx context.Context) error {
	if err := pr.flush(ctx); err != nil {
		return err
	}
	if err := pr.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	if pr.txn.open > 0 {
		pr.txn.committed++
	}
	pr.txn.open = 0
	pr.txn.committedRecords = pr.acked.Load()
	return nil
}

// abort ends the open transaction after cause, so that read_committed
// consumers never see its records, and says what stays committed.
func (pr *producer) abort(ctx context.Context, cause error) error {
	// Not cut short by an interrupt: an open transaction would otherwise
	// hold back read_committed consumers until the broker times it out.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pr.txn.timeout)
	defer cancel()
	if err := pr.cl.AbortBufferedRecords(actx); err != nil {
		return fmt.Errorf("%w; abort transaction: %v", cause, err)
	}
	if err := pr.cl.EndTransaction(actx, kgo.TryAbort); err != nil {
		return fmt.Errorf("%w; abort transaction: %v", cause, err)
	}
	if pr.txn.committed == 0 {
		return fmt.Errorf("%w; transaction aborted, nothing committed", cause)
	}
	return fmt.Errorf("%w; transaction aborted (%s with %s committed before it)", cause, plural(pr.txn.committed, "transaction"), plural(pr.txn.committedRecords, "record"))
}

func plural(n int64, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
