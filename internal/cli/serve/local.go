package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/internal/config"
	"github.com/weir-dev/weir/internal/server"
)

// NewLocalCluster returns `weir cluster local`: several nodes of one
// cluster in this process, for development.
func NewLocalCluster() *cobra.Command {
	var (
		nodes    int
		dataDir  string
		host     string
		basePort int
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Run a cluster of several nodes in this process (for development)",
		Long: `Run a cluster of --nodes nodes in this one process, each with its own data
directory under --data-dir. Node i (from 1) serves Kafka clients on
base-port+i-1, HTTP on base-port+100+i-1 and Raft on base-port+200+i-1.
Every node is a controller voter. Stop with Ctrl-C; start again with the
same flags to get the same cluster back.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodes < 1 || nodes > 9 {
				return fmt.Errorf("--nodes must be 1 to 9, got %d", nodes)
			}
			cfgs := LocalClusterConfigs(nodes, dataDir, host, basePort)
			for i := range cfgs {
				cfgs[i].LogLevel = logLevel
				if err := cfgs[i].Validate(); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var brokers []string
			for _, c := range cfgs {
				brokers = append(brokers, c.KafkaAddr)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "starting %d nodes; brokers: %s\n", nodes, strings.Join(brokers, ","))
			return RunLocalCluster(ctx, cfgs, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().IntVar(&nodes, "nodes", 3, "number of nodes")
	cmd.Flags().StringVar(&dataDir, "data-dir", "./weir-cluster", "directory holding one data directory per node")
	cmd.Flags().StringVar(&host, "host", "127.0.0.1", "host every listener binds")
	cmd.Flags().IntVar(&basePort, "base-port", 9092, "Kafka port of node 1 (see above for the others)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// LocalClusterConfigs returns the configurations of an n-node local
// cluster.
func LocalClusterConfigs(n int, dataDir, host string, basePort int) []config.Config {
	addr := func(p int) string { return net.JoinHostPort(host, strconv.Itoa(p)) }
	var seeds []string
	for i := range n {
		seeds = append(seeds, addr(basePort+200+i))
	}
	cfgs := make([]config.Config, n)
	for i := range n {
		c := config.Default()
		c.NodeID = int32(i + 1)
		c.DataDir = filepath.Join(dataDir, fmt.Sprintf("node-%d", i+1))
		c.KafkaAddr = addr(basePort + i)
		c.HTTPAddr = addr(basePort + 100 + i)
		c.RPCAddr = seeds[i]
		c.Seeds = seeds
		cfgs[i] = c
	}
	return cfgs
}

// RunLocalCluster starts every node (concurrently: they wait for each
// other) and serves until ctx ends.
func RunLocalCluster(ctx context.Context, cfgs []config.Config, logOut io.Writer) error {
	srvs := make([]*server.Server, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, c := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srvs[i], errs[i] = server.New(c, server.WithLogger(newLogger(c, logOut).With("node", c.NodeID)))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range srvs {
			if s != nil {
				s.Close()
			}
		}
		return err
	}
	runErrs := make([]error, len(srvs))
	for i, s := range srvs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runErrs[i] = s.Run(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(runErrs...)
}
