package module

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// clientOpts are the catalog client's connection settings.
func clientOpts(p *clientcmd.Params) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(p.Brokers()...),
		kgo.ClientID("weir"),
		kgo.DialTimeout(p.Timeout),
		kgo.RetryTimeout(p.Timeout),
	}
}
