// Package produce is `weir produce`: one record per input line, from stdin or
// a file, with optional keys and headers.
package produce

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/term"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// defaultMaxMessageBytes is Kafka's (and Weir's) default max.message.bytes,
// so that a line the broker would accept is not refused by the client first.
const defaultMaxMessageBytes = 1048588

type options struct {
	file            string
	keySeparator    string
	headers         []string
	partition       int32
	acks            string
	compression     string
	progress        bool
	maxMessageBytes int32
	format          string
	transactionalID string
	txnBatch        int
	transform       string
	params          []string
}

// New returns `weir produce`.
func New(p *clientcmd.Params) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce one record per line of stdin or a file",
		Long: `Produce one record per line of stdin (or --file). The newline is not part of
the record; an empty line is a record with an empty value. With
--key-separator, the part of a line before the first separator is the key.

Records are acknowledged by the broker before the command exits; a summary
(records, bytes, rate) goes to stderr, or to stdout as JSON with --format json.

With --transactional-id the whole input is produced in one transaction,
committed at the end: consumers reading committed records (read_committed)
see all of it or, if anything fails, none of it; the transaction is then
aborted and the command exits with an error. --txn-batch N commits every N
records instead, so that a large file is not one huge transaction (the broker
aborts a transaction still open after the client's transaction timeout,
40s); a failure then aborts only the open transaction, and the error says
how many were committed before it.`,
		Example: `  printf 'k1=v1\nk2=v2\n' | weir produce events --key-separator =
  weir produce events --file events.txt -H source=import --compression zstd
  weir produce events --file events.txt --transactional-id import-1 --txn-batch 10000`,
		Args: clientcmd.ExactArgs(1, "one TOPIC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd, p, &o, args[0])
		},
	}
	fs := cmd.Flags()
	p.AddConnFlags(fs)
	clientcmd.AddFormatFlag(fs, &o.format)
	// No -f: in consume, -f is --follow.
	fs.StringVar(&o.file, "file", "", "read lines from this file instead of stdin")
	fs.StringVarP(&o.keySeparator, "key-separator", "K", "", "split each line into key and value at the first occurrence of this string")
	fs.StringArrayVarP(&o.headers, "header", "H", nil, "header key=value added to every record (repeatable)")
	fs.Int32Var(&o.partition, "partition", -1, "produce every record to this partition; -1 spreads records by key, or evenly without keys")
	fs.StringVar(&o.acks, "acks", "all", "acknowledgements to wait for: all, 1 or 0")
	fs.StringVar(&o.compression, "compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	fs.BoolVar(&o.progress, "progress", false, "show a progress bar on stderr even when it is not a terminal")
	fs.Int32Var(&o.maxMessageBytes, "max-message-bytes", defaultMaxMessageBytes, "largest record batch to send; longer lines are an error")
	fs.StringVar(&o.transactionalID, "transactional-id", "", "produce the input in a transaction with this transactional id; any failure aborts it")
	fs.IntVar(&o.txnBatch, "txn-batch", 0, "with --transactional-id, commit a transaction every this many records (default: one transaction for all)")
	fs.StringVar(&o.transform, "transform", "", "run this WebAssembly module over the records before sending them (filter, map, flat-map… at the edge)")
	fs.StringArrayVar(&o.params, "param", nil, "with --transform, a module parameter key=value (repeatable)")
	return cmd
}

func run(cmd *cobra.Command, p *clientcmd.Params, o *options, topic string) error {
	f, err := clientcmd.ParseFormat(o.format)
	if err != nil {
		return err
	}
	opts, err := o.clientOpts(topic, p.Timeout)
	if err != nil {
		return err
	}
	kvs, err := clientcmd.ParseKVs("--header", o.headers)
	if err != nil {
		return err
	}
	// One header slice is shared by every record: the client only reads it.
	var headers []kgo.RecordHeader
	for _, kv := range kvs {
		headers = append(headers, kgo.RecordHeader{Key: kv.Key, Value: []byte(kv.Value)})
	}

	in := cmd.InOrStdin()
	inName, size := "stdin", int64(-1)
	if o.file != "" {
		file, err := os.Open(o.file)
		if err != nil {
			return err
		}
		defer file.Close()
		in, inName = file, o.file
		if st, err := file.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
	}

	cl, err := p.Client(cmd.Context(), opts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	stderr := cmd.ErrOrStderr()
	var bar *progressbar.ProgressBar
	if o.progress || (o.file != "" && isTerminal(stderr)) {
		bar = newBar(stderr, topic, size)
	}
	pr := &producer{
		cl:        cl,
		topic:     topic,
		headers:   headers,
		keySep:    []byte(o.keySeparator),
		partition: o.partition,
		bar:       bar,
	}
	if o.transactionalID != "" {
		pr.txn = &txnState{batch: o.txnBatch, timeout: p.Timeout}
	}
	if o.transform != "" {
		params, err := clientcmd.ParseKVs("--param", o.params)
		if err != nil {
			return err
		}
		batch := 1 // stdin: each line goes out as it comes
		if o.file != "" {
			batch = 100
		}
		if pr.xf, err = newEdgeTransform(cmd.Context(), o.transform, topic, params, batch, stderr); err != nil {
			return err
		}
		defer pr.xf.close(cmd.Context())
	} else if len(o.params) > 0 {
		return errors.New("--param needs --transform")
	}
	start := time.Now()
	err = pr.run(cmd.Context(), newLineReader(in, int(o.maxMessageBytes)), inName)
	elapsed := time.Since(start)
	if bar != nil {
		if err == nil {
			bar.Finish()
		}
		// A bar that reached its end already moved to a new line.
		if !bar.IsFinished() {
			bar.Exit()
		}
	}
	if err != nil {
		return err
	}
	s := newSummary(topic, pr.acked.Load(), pr.ackedBytes.Load(), elapsed)
	if pr.txn != nil {
		s = s.withTransactions(o.transactionalID, pr.txn.committed)
	}
	if f == clientcmd.JSON {
		return f.Print(cmd.OutOrStdout(), s)
	}
	return s.WriteText(stderr)
}

func (o *options) clientOpts(topic string, timeout time.Duration) ([]kgo.Opt, error) {
	// The client cannot build batches smaller than this.
	const minBatchBytes = 512
	if o.maxMessageBytes < minBatchBytes {
		return nil, fmt.Errorf("--max-message-bytes must be at least %d, not %d", minBatchBytes, o.maxMessageBytes)
	}
	opts := []kgo.Opt{
		kgo.DefaultProduceTopic(topic),
		kgo.AllowAutoTopicCreation(),
		kgo.ProducerBatchMaxBytes(o.maxMessageBytes),
		// A record's delivery clock starts when it is buffered, so the
		// buffer is kept small enough to drain well within --timeout on a
		// slow link (4 MiB at 1 MB/s is 4 s), yet always fits one record.
		kgo.MaxBufferedBytes(max(4<<20, 2*int(o.maxMessageBytes))),
		// Without a delivery timeout a broker that dies mid-run would make
		// the client retry forever.
		kgo.RecordDeliveryTimeout(timeout),
	}
	if o.txnBatch < 0 {
		return nil, fmt.Errorf("--txn-batch must be 0 (one transaction) or more, not %d", o.txnBatch)
	}
	if o.txnBatch > 0 && o.transactionalID == "" {
		return nil, errors.New("--txn-batch needs --transactional-id")
	}
	if o.transactionalID != "" {
		if o.acks != "all" && o.acks != "-1" {
			return nil, fmt.Errorf("--transactional-id needs --acks all, not %q", o.acks)
		}
		opts = append(opts, kgo.TransactionalID(o.transactionalID))
	} else {
		// By default an idempotent client will not give up on a request
		// already sent, since it cannot know whether the broker wrote it;
		// the command exits on the first failure and never re-sends, so a
		// bounded wait is worth more here than that guarantee. (A
		// transactional client may not cancel: it aborts instead, and
		// what the broker wrote of the transaction never becomes visible.)
		opts = append(opts, kgo.AllowIdempotentProduceCancellation())
	}
	switch o.acks {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "1":
		// Idempotence needs acks=all; fewer acks trade it for latency.
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	default:
		return nil, fmt.Errorf("--acks must be all, 1 or 0, not %q", o.acks)
	}
	var codec kgo.CompressionCodec
	switch o.compression {
	case "none":
		codec = kgo.NoCompression()
	case "gzip":
		codec = kgo.GzipCompression()
	case "snappy":
		codec = kgo.SnappyCompression()
	case "lz4":
		codec = kgo.Lz4Compression()
	case "zstd":
		codec = kgo.ZstdCompression()
	default:
		return nil, fmt.Errorf("--compression must be none, gzip, snappy, lz4 or zstd, not %q", o.compression)
	}
	opts = append(opts, kgo.ProducerBatchCompression(codec))
	if o.partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	} else if o.partition != -1 {
		return nil, fmt.Errorf("--partition must be 0 or more, not %d", o.partition)
	}
	return opts, nil
}

// producer turns lines into records and keeps the first failure.
type producer struct {
	cl        *kgo.Client
	topic     string
	headers   []kgo.RecordHeader
	keySep    []byte
	partition int32
	bar       *progressbar.ProgressBar
	txn       *txnState      // nil without --transactional-id
	xf        *edgeTransform // nil without --transform

	acked, ackedBytes atomic.Int64
	failed            atomic.Bool
	mu                struct {
		sync.Mutex
		err error
	}
}

// produceLines produces every line until the input ends, a record fails or
// a line cannot be read. In the last case the lines before it are still
// delivered, so that what was produced is always a prefix of the input.
// afterEach, if set, runs after each record is handed to the client.
func (pr *producer) produceLines(ctx context.Context, lines *lineReader, inName string, afterEach func(context.Context) error) error {
	var readErr error
	for !pr.failed.Load() {
		line, err := lines.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("read %s: %w", inName, err)
			break
		}
		if pr.bar != nil {
			pr.bar.Add64(int64(lines.consumed))
		}
		rec := &kgo.Record{Value: line, Headers: pr.headers}
		if len(pr.keySep) > 0 {
			if k, v, ok := bytes.Cut(line, pr.keySep); ok {
				rec.Key, rec.Value = k, v
			}
		}
		if pr.partition >= 0 {
			rec.Partition = pr.partition
		}
		if pr.xf != nil {
			if err := pr.xf.add(ctx, rec, pr.send); err != nil {
				return err
			}
		} else {
			pr.send(ctx, rec)
		}
		if afterEach != nil {
			if err := afterEach(ctx); err != nil {
				return err
			}
		}
	}
	if pr.xf != nil {
		if err := pr.xf.flush(ctx, pr.send); err != nil {
			return err
		}
	}
	if err := pr.flush(ctx); err != nil {
		return err
	}
	return readErr
}

func (pr *producer) send(ctx context.Context, rec *kgo.Record) { pr.cl.Produce(ctx, rec, pr.promise) }

// flush waits for every record to be acknowledged and returns the first
// failure.
func (pr *producer) flush(ctx context.Context) error {
	if err := pr.cl.Flush(ctx); err != nil {
		return fmt.Errorf("produce to %s: %w", pr.topic, err)
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.mu.err
}

func (pr *producer) promise(r *kgo.Record, err error) {
	if err == nil {
		pr.acked.Add(1)
		pr.ackedBytes.Add(int64(len(r.Key) + len(r.Value)))
		return
	}
	pr.failed.Store(true)
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.mu.err == nil {
		pr.mu.err = produceError(pr.topic, r, err)
	}
}

func produceError(topic string, r *kgo.Record, err error) error {
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return &clientcmd.UnknownTopicError{Topic: topic}
	case errors.Is(err, kgo.ErrRecordTimeout):
		return fmt.Errorf("produce to %s[%d]: no acknowledgement within --timeout: %w", topic, r.Partition, err)
	}
	return fmt.Errorf("produce to %s[%d]: %w", topic, r.Partition, err)
}

// lineReader yields lines without their '\n'. Unlike bufio.Scanner it has no
// fixed token limit, but it still refuses a line longer than max so that one
// huge line cannot take all memory.
type lineReader struct {
	r        *bufio.Reader
	max      int
	line     int // number of the line last returned
	consumed int // bytes of input, newline included, behind the line last returned
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

func (l *lineReader) next() ([]byte, error) {
	var line []byte
	for {
		chunk, err := l.r.ReadSlice('\n')
		// The first append copies: records keep their bytes until acked,
		// long after the reader's buffer moved on.
		line = append(line, chunk...)
		n := len(line)
		if n > 0 && line[n-1] == '\n' {
			n--
		}
		if n > l.max {
			return nil, fmt.Errorf("line %d is longer than --max-message-bytes (%d bytes)", l.line+1, l.max)
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && len(line) == 0:
			return nil, io.EOF
		case err != nil && err != io.EOF:
			return nil, err
		}
		l.line++
		l.consumed = len(line)
		if line == nil {
			line = []byte{}
		}
		return line[:n], nil
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newBar(w io.Writer, topic string, size int64) *progressbar.ProgressBar {
	if size <= 0 {
		size = -1 // unknown length: a spinner with a byte count
	}
	return progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("producing to "+topic),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
}
