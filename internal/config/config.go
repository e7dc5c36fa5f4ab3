// Package config holds the broker's settings and loads them from, in
// increasing order of precedence, built-in defaults, WEIR_* environment
// variables, a YAML file and command-line flags. One table of settings drives
// all three sources so that they cannot drift apart.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is everything `weir serve` needs.
type Config struct {
	DataDir             string
	NodeID              int32
	KafkaAddr           string
	AdvertisedKafkaAddr string
	HTTPAddr            string
	LogLevel            string
	LogFormat           string
	AutoCreateTopics    bool
	DefaultPartitions   int32
	MaxRequestBytes     int32
	MaintenanceInterval time.Duration
	ShutdownTimeout     time.Duration
	SyncWorkers         int
	// GroupInitialRebalanceDelay holds a new group's first rebalance so
	// that members starting together join one generation (Kafka's
	// group.initial.rebalance.delay.ms).
	GroupInitialRebalanceDelay time.Duration
	// TopicDefaults overrides built-in topic config defaults (e.g.
	// retention.ms) for every topic.
	TopicDefaults map[string]string
	// Cluster mode (on when Seeds is set): the node-to-node Raft listener,
	// the controller voters' RPC addresses (the same on every node), the
	// default replication factor, and a dial redirection for tests that
	// put proxies between nodes.
	RPCAddr           string
	Seeds             []string
	ClusterName       string
	ReplicationFactor int32
	RaftTick          time.Duration
	RPCDialMap        map[string]string
	// HealAfter: a node offline this long has its replicas re-created on
	// other nodes.
	HealAfter time.Duration
	// LeaderRebalanceAfter: a leader that is not the preferred replica
	// hands leadership back after leading this long.
	LeaderRebalanceAfter time.Duration
	// Transforms: the memory cap of a module instance (MiB), the time one
	// batch may take, and how often the node re-reads the transform
	// catalog and reports status.
	TransformMemoryMB int
	TransformBudget   time.Duration
	TransformInterval time.Duration
}

// Clustered reports whether the node runs as part of a cluster.
func (c *Config) Clustered() bool { return len(c.Seeds) > 0 }

// Default returns the embedded defaults: a single node on loopback keeping
// its data in ./weir-data.
func Default() Config {
	return Config{
		DataDir:             "./weir-data",
		KafkaAddr:           "127.0.0.1:9092",
		HTTPAddr:            "127.0.0.1:9644",
		LogLevel:            "info",
		LogFormat:           "text",
		AutoCreateTopics:    true,
		DefaultPartitions:   1,
		MaxRequestBytes:     100 << 20,
		MaintenanceInterval: 30 * time.Second,
		ShutdownTimeout:     30 * time.Second,
		SyncWorkers:         4,
		TopicDefaults:       map[string]string{},

		GroupInitialRebalanceDelay: 3 * time.Second,

		RPCAddr:              "127.0.0.1:9645",
		ClusterName:          "weir",
		ReplicationFactor:    3,
		RaftTick:             100 * time.Millisecond,
		HealAfter:            5 * time.Minute,
		LeaderRebalanceAfter: 30 * time.Second,
		RPCDialMap:           map[string]string{},

		TransformMemoryMB: 128,
		TransformBudget:   5 * time.Second,
		TransformInterval: 2 * time.Second,
	}
}

// Setting is one configurable value, known by the same key as a flag
// (--key), a YAML key and an environment variable (WEIR_KEY with dashes as
// underscores).
type Setting struct {
	Key   string
	Usage string
	// Kind is "string", "int", "bool", "duration" or "map".
	Kind string
	get  func(*Config) string
	set  func(*Config, string) error
}

// EnvName is the environment variable for the setting.
func (s Setting) EnvName() string {
	return "WEIR_" + strings.ToUpper(strings.ReplaceAll(s.Key, "-", "_"))
}

// Get formats the setting's current value in c.
func (s Setting) Get(c *Config) string { return s.get(c) }

// Set parses v into c.
func (s Setting) Set(c *Config, v string) error {
	if err := s.set(c, v); err != nil {
		return fmt.Errorf("%s: %w", s.Key, err)
	}
	return nil
}

func str(key, usage string, f func(*Config) *string) Setting {
	return Setting{Key: key, Usage: usage, Kind: "string",
		get: func(c *Config) string { return *f(c) },
		set: func(c *Config, v string) error { *f(c) = v; return nil }}
}

func int32s(key, usage string, f func(*Config) *int32) Setting {
	return Setting{Key: key, Usage: usage, Kind: "int",
		get: func(c *Config) string { return strconv.Itoa(int(*f(c))) },
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
			if err != nil {
				return fmt.Errorf("%q is not an integer", v)
			}
			*f(c) = int32(n)
			return nil
		}}
}

func ints(key, usage string, f func(*Config) *int) Setting {
	return Setting{Key: key, Usage: usage, Kind: "int",
		get: func(c *Config) string { return strconv.Itoa(*f(c)) },
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%q is not an integer", v)
			}
			*f(c) = n
			return nil
		}}
}

func bools(key, usage string, f func(*Config) *bool) Setting {
	return Setting{Key: key, Usage: usage, Kind: "bool",
		get: func(c *Config) string { return strconv.FormatBool(*f(c)) },
		set: func(c *Config, v string) error {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			*f(c) = b
			return nil
		}}
}

func durations(key, usage string, f func(*Config) *time.Duration) Setting {
	return Setting{Key: key, Usage: usage, Kind: "duration",
		get: func(c *Config) string { return f(c).String() },
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%q is not a duration (like 30s or 5m)", v)
			}
			*f(c) = d
			return nil
		}}
}

// Settings lists every setting in a stable order.
func Settings() []Setting {
	return []Setting{
		str("data-dir", "directory for partition logs and metadata", func(c *Config) *string { return &c.DataDir }),
		int32s("node-id", "this node's broker id", func(c *Config) *int32 { return &c.NodeID }),
		str("kafka-addr", "host:port the Kafka protocol listens on", func(c *Config) *string { return &c.KafkaAddr }),
		str("advertised-kafka-addr", "host:port clients are told to connect to (default: the listener's address)", func(c *Config) *string { return &c.AdvertisedKafkaAddr }),
		str("http-addr", "host:port of the HTTP admin listener (/healthz, /readyz)", func(c *Config) *string { return &c.HTTPAddr }),
		str("log-level", "debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }),
		str("log-format", "text or json", func(c *Config) *string { return &c.LogFormat }),
		bools("auto-create-topics", "create unknown topics when clients use them", func(c *Config) *bool { return &c.AutoCreateTopics }),
		int32s("default-partitions", "partitions of auto-created topics", func(c *Config) *int32 { return &c.DefaultPartitions }),
		int32s("max-request-bytes", "largest request accepted; larger ones close the connection", func(c *Config) *int32 { return &c.MaxRequestBytes }),
		durations("maintenance-interval", "how often retention and housekeeping run", func(c *Config) *time.Duration { return &c.MaintenanceInterval }),
		durations("shutdown-timeout", "how long shutdown waits for in-flight requests", func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
		ints("sync-workers", "goroutines issuing fsyncs for partitions in parallel", func(c *Config) *int { return &c.SyncWorkers }),
		durations("group-initial-rebalance-delay", "how long a new consumer group waits for more members before its first rebalance", func(c *Config) *time.Duration { return &c.GroupInitialRebalanceDelay }),
		str("rpc-addr", "host:port of the node-to-node (Raft) listener in a cluster; also how the other nodes reach this one", func(c *Config) *string { return &c.RPCAddr }),
		{Key: "seeds", Kind: "string", Usage: "comma-separated rpc addresses of the controller nodes, the same on every node; setting it turns cluster mode on",
			get: func(c *Config) string { return strings.Join(c.Seeds, ",") },
			set: func(c *Config, v string) error {
				c.Seeds = nil
				for _, s := range strings.Split(v, ",") {
					if s = strings.TrimSpace(s); s != "" {
						c.Seeds = append(c.Seeds, s)
					}
				}
				return nil
			}},
		str("cluster-name", "name every node of a cluster shares; nodes of another are refused", func(c *Config) *string { return &c.ClusterName }),
		int32s("default-replication-factor", "replicas of topics created without a replication factor (at most the number of nodes)", func(c *Config) *int32 { return &c.ReplicationFactor }),
		durations("heal-after", "in a cluster, how long a node may be offline before its replicas are re-created on other nodes", func(c *Config) *time.Duration { return &c.HealAfter }),
		durations("leader-rebalance-after", "in a cluster, how long a leader that is not the preferred replica leads before handing leadership back", func(c *Config) *time.Duration { return &c.LeaderRebalanceAfter }),
		ints("transform-memory-mb", "memory cap of each transform module instance, in MiB", func(c *Config) *int { return &c.TransformMemoryMB }),
		durations("transform-budget", "how long a transform module may take over one batch before it is stopped; 0 trusts modules: no budget, so a module that never returns is never stopped", func(c *Config) *time.Duration { return &c.TransformBudget }),
		durations("transform-interval", "how often a node re-reads the transform catalog, follows partition leaders and reports transform status", func(c *Config) *time.Duration { return &c.TransformInterval }),
		durations("raft-tick", "Raft tick: heartbeats every tick, elections after 10 without a leader", func(c *Config) *time.Duration { return &c.RaftTick }),
		{Key: "rpc-dial-map", Kind: "map", Usage: "testing: dial B to reach the node at rpc address A, as A=B[,A=B]",
			get: func(c *Config) string { return formatMap(c.RPCDialMap) },
			set: func(c *Config, v string) error {
				m, err := parseMap(v)
				if err != nil {
					return err
				}
				c.RPCDialMap = m
				return nil
			}},
		{Key: "topic-defaults", Kind: "map", Usage: "topic config defaults for every topic, as name=value[,name=value]",
			get: func(c *Config) string { return formatMap(c.TopicDefaults) },
			set: func(c *Config, v string) error {
				m, err := parseMap(v)
				if err != nil {
					return err
				}
				c.TopicDefaults = m
				return nil
			}},
	}
}

func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

func parseMap(v string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not name=value", kv)
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}
	return m, nil
}

// ApplyEnv applies WEIR_* variables found by lookup (os.LookupEnv).
func ApplyEnv(c *Config, lookup func(string) (string, bool)) error {
	for _, s := range Settings() {
		if v, ok := lookup(s.EnvName()); ok {
			if err := s.Set(c, v); err != nil {
				return fmt.Errorf("environment %s: %w", s.EnvName(), err)
			}
		}
	}
	return nil
}

// ApplyFile applies a YAML file. Unknown keys are an error, so a typo never
// silently does nothing.
func ApplyFile(c *Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	return ApplyYAML(c, data, path)
}

// ApplyYAML applies YAML text; name is used in errors.
func ApplyYAML(c *Config, data []byte, name string) error {
	var doc map[string]yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) { // an empty file is fine
		return fmt.Errorf("config file %s: %w", name, err)
	}
	byKey := map[string]Setting{}
	for _, s := range Settings() {
		byKey[s.Key] = s
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		node := doc[k]
		s, ok := byKey[k]
		if !ok {
			return fmt.Errorf("config file %s line %d: unknown setting %q", name, node.Line, k)
		}
		var v string
		if s.Kind == "map" {
			if node.Kind != yaml.MappingNode {
				return fmt.Errorf("config file %s line %d: %s must be a mapping of names to values", name, node.Line, k)
			}
			m := map[string]string{}
			if err := node.Decode(&m); err != nil {
				return fmt.Errorf("config file %s line %d: %s: %w", name, node.Line, k, err)
			}
			v = formatMap(m)
		} else {
			if node.Kind != yaml.ScalarNode {
				return fmt.Errorf("config file %s line %d: %s must be a single value", name, node.Line, k)
			}
			v = node.Value
		}
		if err := s.Set(c, v); err != nil {
			return fmt.Errorf("config file %s line %d: %w", name, node.Line, err)
		}
	}
	return nil
}

// Validate checks the whole configuration and says what is wrong and how to
// fix it.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data-dir must not be empty")
	}
	for _, a := range []struct{ key, v string }{{"kafka-addr", c.KafkaAddr}, {"http-addr", c.HTTPAddr}} {
		if err := checkAddr(a.v); err != nil {
			bad("%s %q: %v", a.key, a.v, err)
		}
	}
	if c.AdvertisedKafkaAddr != "" {
		host, _, err := net.SplitHostPort(c.AdvertisedKafkaAddr)
		if err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
			err = errors.New("must name a host clients can reach")
		}
		if err == nil {
			err = checkAddr(c.AdvertisedKafkaAddr)
		}
		if err != nil {
			bad("advertised-kafka-addr %q: %v", c.AdvertisedKafkaAddr, err)
		}
	}
	if c.NodeID < 0 {
		bad("node-id must be 0 or more, got %d", c.NodeID)
	}
	if c.TransformMemoryMB < 1 || c.TransformMemoryMB > 4096 {
		bad("transform-memory-mb must be 1 to 4096, got %d", c.TransformMemoryMB)
	}
	if c.TransformBudget < 0 || c.TransformInterval <= 0 {
		bad("transform-budget must be 0 or more and transform-interval positive")
	}
	if c.Clustered() {
		if c.NodeID < 1 {
			bad("node-id must be 1 or more in a cluster (--seeds is set)")
		}
		if err := checkAddr(c.RPCAddr); err != nil {
			bad("rpc-addr %q: %v", c.RPCAddr, err)
		}
		for _, s := range c.Seeds {
			if err := checkAddr(s); err != nil {
				bad("seeds: %q: %v", s, err)
			}
		}
		if len(c.Seeds) > 5 {
			bad("seeds: %d listed; the controller runs on at most 5 voters (other nodes join through them)", len(c.Seeds))
		}
		if c.ReplicationFactor < 1 {
			bad("default-replication-factor must be at least 1, got %d", c.ReplicationFactor)
		}
		if c.RaftTick <= 0 {
			bad("raft-tick must be positive, got %s", c.RaftTick)
		}
		if c.HealAfter <= 0 {
			bad("heal-after must be positive, got %s", c.HealAfter)
		}
		if c.LeaderRebalanceAfter <= 0 {
			bad("leader-rebalance-after must be positive, got %s", c.LeaderRebalanceAfter)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level %q: use debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log-format %q: use text or json", c.LogFormat)
	}
	if c.DefaultPartitions < 1 {
		bad("default-partitions must be at least 1, got %d", c.DefaultPartitions)
	}
	if c.MaxRequestBytes < 1024 {
		bad("max-request-bytes must be at least 1024, got %d", c.MaxRequestBytes)
	}
	if c.MaintenanceInterval <= 0 {
		bad("maintenance-interval must be positive, got %s", c.MaintenanceInterval)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout must be positive, got %s", c.ShutdownTimeout)
	}
	if c.GroupInitialRebalanceDelay < 0 {
		bad("group-initial-rebalance-delay must not be negative, got %s", c.GroupInitialRebalanceDelay)
	}
	if c.SyncWorkers < 1 || c.SyncWorkers > 256 {
		bad("sync-workers must be between 1 and 256, got %d", c.SyncWorkers)
	}
	return errors.Join(errs...)
}

func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}
