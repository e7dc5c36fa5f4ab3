// Package serve is the `weir serve` command.
package serve

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weir-dev/weir/internal/config"
	"github.com/weir-dev/weir/internal/server"
)

// New returns the serve command.
func New() *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a Weir broker",
		Long: `Run a Weir broker. With no flags it keeps data in ./weir-data, serves Kafka
clients on 127.0.0.1:9092 and health checks on http://127.0.0.1:9644/healthz.

Settings come from, in increasing order of precedence: built-in defaults,
WEIR_* environment variables (WEIR_DATA_DIR, WEIR_KAFKA_ADDR, ...), the YAML
file given with --config, and flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := Load(cmd.Flags(), configFile, os.LookupEnv)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return Run(ctx, cfg, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "YAML configuration file")
	def := config.Default()
	for _, s := range config.Settings() {
		cmd.Flags().String(s.Key, s.Get(&def), s.Usage)
	}
	cmd.Flags().MarkHidden("rpc-dial-map") // for the fault-injection harness
	return cmd
}

// Load builds the configuration from defaults, the environment, the file
// and the flags that were set, then validates it.
func Load(flags *pflag.FlagSet, file string, lookupEnv func(string) (string, bool)) (config.Config, error) {
	cfg := config.Default()
	if err := config.ApplyEnv(&cfg, lookupEnv); err != nil {
		return cfg, err
	}
	if file != "" {
		if err := config.ApplyFile(&cfg, file); err != nil {
			return cfg, err
		}
	}
	for _, s := range config.Settings() {
		if f := flags.Lookup(s.Key); f != nil && f.Changed {
			if err := s.Set(&cfg, f.Value.String()); err != nil {
				return cfg, fmt.Errorf("flag --%w", err)
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}

// Run starts a server with cfg and serves until ctx ends.
func Run(ctx context.Context, cfg config.Config, logOut io.Writer) error {
	logger := newLogger(cfg, logOut)
	srv, err := server.New(cfg, server.WithLogger(logger))
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

func newLogger(cfg config.Config, out io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(out, opts))
	}
	return slog.New(slog.NewTextHandler(out, opts))
}
