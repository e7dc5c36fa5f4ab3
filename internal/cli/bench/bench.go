// Package bench is `weir bench produce|consume|e2e`: a Kafka-protocol load
// generator built on franz-go that works against any Kafka-compatible
// broker, so that Weir and its peers are measured by the same client. The
// measuring itself (histogram, pacer, stamps, output) is in package measure.
package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/cli/bench/measure"
)

// options are the flags of all three verbs; each verb registers the ones
// it uses.
type options struct {
	brokers       string
	topic         string
	partitions    int32
	topicConfigs  map[string]string
	recordSize    int
	duration      time.Duration
	warmup        time.Duration
	acks          string
	idempotent    bool
	txnInterval   time.Duration
	linger        time.Duration
	batchMaxBytes int32
	maxBuffered   int
	producers     int
	consumers     int
	rate          float64
	compression   string
	count         int64
	format        string
	cpuprofile    string
	// drainTimeout bounds the wait for the last records after the run.
	drainTimeout time.Duration
}

func defaultOptions() options {
	return options{
		brokers:       "127.0.0.1:9092",
		topic:         "weir-bench",
		partitions:    1,
		recordSize:    1024,
		duration:      10 * time.Second,
		warmup:        time.Second,
		acks:          "all",
		idempotent:    true,
		linger:        5 * time.Millisecond,
		batchMaxBytes: 1 << 20,
		// kgo's default before v1.20; its newer 50000 only lengthens the
		// client-side queue that a saturated run's ack latency measures.
		maxBuffered:  10000,
		producers:    1,
		consumers:    1,
		compression:  "none",
		format:       "text",
		drainTimeout: 30 * time.Second,
	}
}

// New returns the bench command.
func New() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a Kafka-compatible broker: produce, consume and end-to-end latency",
		Long: `Measure a Kafka-compatible broker (Weir or any other) with a franz-go client.

  produce  write records as fast as possible (or at --rate) for --duration
           and report records/s, MB/s and produce ack latency
  consume  read --count records (default: everything present) from the
           beginning as fast as possible and report records/s and MB/s
  e2e      produce and consume at once; each value carries its send time in
           its first 8 bytes and the consumer reports now minus that time

With --rate, a send that falls more than 2 ms behind its schedule is
charged from its scheduled time, so a stalled broker cannot hide its stall
(coordinated omission). MB is 10^6 bytes of record values.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newProduce(), newConsume(), newE2E())
	return cmd
}

func addCommonFlags(cmd *cobra.Command, o *options) {
	f := cmd.Flags()
	f.StringVar(&o.brokers, "brokers", o.brokers, "comma-separated seed brokers")
	f.StringVar(&o.topic, "topic", o.topic, "topic to use")
	f.StringVar(&o.format, "format", o.format, "output format: text or json")
	f.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of this client to FILE")
	_ = f.MarkHidden("cpuprofile")
}

func addProducerFlags(cmd *cobra.Command, o *options) {
	f := cmd.Flags()
	f.Int32Var(&o.partitions, "partitions", o.partitions, "partitions when the topic has to be created")
	f.StringToStringVar(&o.topicConfigs, "topic-config", nil, "topic configs when the topic has to be created (key=value,...)")
	f.IntVar(&o.recordSize, "record-size", o.recordSize, "bytes per record value (at least 8)")
	f.DurationVar(&o.duration, "duration", o.duration, "how long to measure")
	f.DurationVar(&o.warmup, "warmup", o.warmup, "how long to run before measuring")
	f.StringVar(&o.acks, "acks", o.acks, "required acks: all, 1 or 0")
	f.BoolVar(&o.idempotent, "idempotent", o.idempotent, "idempotent producer (needs --acks all)")
	f.DurationVar(&o.txnInterval, "txn-interval", 0, "produce in transactions committed this often (0: no transactions)")
	f.DurationVar(&o.linger, "linger", o.linger, "producer linger")
	f.Int32Var(&o.batchMaxBytes, "batch-max-bytes", o.batchMaxBytes, "maximum bytes per record batch")
	f.IntVar(&o.maxBuffered, "max-buffered", o.maxBuffered, "records a producer buffers before Produce blocks")
	f.IntVar(&o.producers, "producers", o.producers, "producer clients")
	f.Float64Var(&o.rate, "rate", o.rate, "total records/s across producers; 0 = as fast as possible")
	f.StringVar(&o.compression, "compression", o.compression, "batch compression: none, gzip, snappy, lz4 or zstd")
}

func addConsumerFlags(cmd *cobra.Command, o *options) {
	cmd.Flags().IntVar(&o.consumers, "consumers", o.consumers, "consumer clients; partitions are split among them")
}

// validate checks the options a verb uses. idempotentSet says whether
// --idempotent was given explicitly: it then conflicts with acks other
// than all instead of being switched off quietly.
func (o *options) validate(mode string, idempotentSet bool) error {
	var errs []error
	if o.brokers == "" || o.topic == "" {
		errs = append(errs, errors.New("--brokers and --topic must not be empty"))
	}
	if err := measure.CheckFormat(o.format); err != nil {
		errs = append(errs, err)
	}
	if mode != "consume" {
		if o.recordSize < measure.StampSize {
			errs = append(errs, fmt.Errorf("--record-size %d: must be at least %d to carry the send time", o.recordSize, measure.StampSize))
		}
		if o.duration <= 0 || o.warmup < 0 {
			errs = append(errs, errors.New("--duration must be > 0 and --warmup >= 0"))
		}
		if o.partitions < 1 || o.producers < 1 || o.maxBuffered < 1 {
			errs = append(errs, errors.New("--partitions, --producers and --max-buffered must be at least 1"))
		}
		if o.rate < 0 {
			errs = append(errs, errors.New("--rate must be >= 0"))
		}
		if _, err := parseAcks(o.acks); err != nil {
			errs = append(errs, err)
		}
		if _, err := parseCompression(o.compression); err != nil {
			errs = append(errs, err)
		}
		if o.acks != "all" && o.idempotent {
			if idempotentSet {
				errs = append(errs, fmt.Errorf("--idempotent needs --acks all, not %s", o.acks))
			}
			o.idempotent = false
		}
		if o.txnInterval > 0 && (!o.idempotent || o.acks != "all") {
			errs = append(errs, errors.New("--txn-interval needs an idempotent producer with --acks all"))
		}
		if o.txnInterval < 0 {
			errs = append(errs, errors.New("--txn-interval must be >= 0"))
		}
	}
	if mode != "produce" && o.consumers < 1 {
		errs = append(errs, errors.New("--consumers must be at least 1"))
	}
	if o.count < 0 {
		errs = append(errs, errors.New("--count must be >= 0"))
	}
	return errors.Join(errs...)
}

func parseAcks(s string) (kgo.Acks, error) {
	switch s {
	case "all", "-1":
		return kgo.AllISRAcks(), nil
	case "1":
		return kgo.LeaderAck(), nil
	case "0":
		return kgo.NoAck(), nil
	}
	return kgo.Acks{}, fmt.Errorf("--acks %q: want all, 1 or 0", s)
}

func parseCompression(s string) (kgo.CompressionCodec, error) {
	switch s {
	case "none", "":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("--compression %q: want none, gzip, snappy, lz4 or zstd", s)
}

func (o *options) seeds() []string {
	var s []string
	for _, b := range strings.Split(o.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			s = append(s, b)
		}
	}
	return s
}

// producerOpts are the kgo options for one producer client; options must
// have been validated.
func (o *options) producerOpts() []kgo.Opt {
	acks, _ := parseAcks(o.acks)
	codec, _ := parseCompression(o.compression)
	opts := []kgo.Opt{
		kgo.SeedBrokers(o.seeds()...),
		kgo.DefaultProduceTopic(o.topic),
		kgo.RequiredAcks(acks),
		kgo.ProducerLinger(o.linger),
		kgo.ProducerBatchMaxBytes(o.batchMaxBytes),
		kgo.ProducerBatchCompression(codec),
		kgo.MaxBufferedRecords(o.maxBuffered),
	}
	if !o.idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	return opts
}

// run wraps a verb: validation, the optional client CPU profile, the run
// and the output.
func run(cmd *cobra.Command, o *options, mode string, body func(ctx context.Context) (measure.Result, error)) error {
	if err := o.validate(mode, cmd.Flags().Changed("idempotent")); err != nil {
		return err
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return fmt.Errorf("create cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	res, err := body(cmd.Context())
	if res.Mode != "" {
		if werr := measure.Write(cmd.OutOrStdout(), o.format, res); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}
