// Package clientcmd holds what every command that talks to a running broker
// shares: the --brokers and --timeout flags, building a Kafka client that
// fails fast when no broker answers, the --format text|json formatter and
// turning Kafka error codes into one readable line.
package clientcmd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultBrokers is where a broker started by a plain `weir serve` listens.
const DefaultBrokers = "127.0.0.1:9092"

// BrokersEnv names the environment variable read when --brokers is not set.
const BrokersEnv = "WEIR_BROKERS"

// DefaultTimeout bounds dialing, each request and waiting for acks, so that a
// command against a dead address fails in seconds rather than hanging.
const DefaultTimeout = 10 * time.Second

// Params are the connection settings of one command tree. Each noun gets its
// own Params so that nothing is shared between command invocations.
type Params struct {
	brokers   string
	Timeout   time.Duration
	lookupEnv func(string) (string, bool)
}

// NewParams returns Params that consult lookupEnv (os.LookupEnv in main) for
// WEIR_BROKERS.
func NewParams(lookupEnv func(string) (string, bool)) *Params {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	return &Params{Timeout: DefaultTimeout, lookupEnv: lookupEnv}
}

// AddConnFlags registers --brokers and --timeout.
func (p *Params) AddConnFlags(fs *pflag.FlagSet) {
	fs.StringVar(&p.brokers, "brokers", "",
		"comma-separated host:port list of brokers (default "+DefaultBrokers+", or $"+BrokersEnv+")")
	fs.DurationVar(&p.Timeout, "timeout", DefaultTimeout,
		"how long to wait to connect, for each request and for produced records to be acknowledged")
}

// Brokers is the seed list: the flag, else $WEIR_BROKERS, else the default.
func (p *Params) Brokers() []string {
	s := strings.TrimSpace(p.brokers)
	if s == "" {
		if v, ok := p.lookupEnv(BrokersEnv); ok {
			s = strings.TrimSpace(v)
		}
	}
	if s == "" {
		s = DefaultBrokers
	}
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// RequestContext bounds one admin round trip by --timeout.
func (p *Params) RequestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.Timeout)
}

// Client builds a Kafka client and checks that a broker answers before
// returning it, so that an unreachable address is one clear error instead of
// retries deep inside the first real request. The caller closes the client.
func (p *Params) Client(ctx context.Context, opts ...kgo.Opt) (*kgo.Client, error) {
	if p.Timeout <= 0 {
		return nil, fmt.Errorf("--timeout must be positive, not %s", p.Timeout)
	}
	brokers := p.Brokers()
	base := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("weir"),
		kgo.DialTimeout(p.Timeout),
		kgo.RequestTimeoutOverhead(p.Timeout),
		kgo.RetryTimeout(p.Timeout),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("configure Kafka client for %s: %w", strings.Join(brokers, ","), err)
	}
	pingCtx, cancel := p.RequestContext(ctx)
	defer cancel()
	// Ping tries each seed once without kgo's retry loop: that is what makes
	// "no broker" fail within --timeout.
	if err := cl.Ping(pingCtx); err != nil {
		cl.Close()
		return nil, &UnreachableError{Brokers: brokers, Timeout: p.Timeout, Err: err}
	}
	return cl, nil
}

// Admin is Client wrapped for admin requests.
func (p *Params) Admin(ctx context.Context) (*kadm.Client, error) {
	cl, err := p.Client(ctx)
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(min(p.Timeout.Milliseconds(), 1<<31-1)))
	return adm, nil
}

// UnreachableError says no seed broker answered.
type UnreachableError struct {
	Brokers []string
	Timeout time.Duration
	Err     error
}

func (e *UnreachableError) Error() string {
	cause := e.Err.Error()
	if errors.Is(e.Err, context.DeadlineExceeded) {
		cause = fmt.Sprintf("no answer within %s", e.Timeout)
	}
	if len(e.Brokers) == 1 {
		return fmt.Sprintf("cannot reach broker at %s: %s", e.Brokers[0], cause)
	}
	return fmt.Sprintf("cannot reach any broker of %s: %s", strings.Join(e.Brokers, ","), cause)
}

func (e *UnreachableError) Unwrap() error { return e.Err }
