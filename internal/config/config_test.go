package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestEnvThenFile(t *testing.T) {
	c := Default()
	env := map[string]string{"WEIR_DATA_DIR": "/from/env", "WEIR_KAFKA_ADDR": "127.0.0.1:1111", "WEIR_AUTO_CREATE_TOPICS": "false",
		"WEIR_TOPIC_DEFAULTS": "retention.ms=5,segment.bytes=2048"}
	if err := ApplyEnv(&c, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	yaml := `
kafka-addr: 127.0.0.1:2222
maintenance-interval: 5s
topic-defaults:
  retention.ms: 60000
`
	if err := ApplyYAML(&c, []byte(yaml), "test.yaml"); err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/from/env" || c.KafkaAddr != "127.0.0.1:2222" || c.AutoCreateTopics || c.MaintenanceInterval != 5*time.Second {
		t.Fatalf("%+v", c)
	}
	if c.TopicDefaults["retention.ms"] != "60000" || len(c.TopicDefaults) != 1 {
		t.Fatalf("topic defaults %v", c.TopicDefaults)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBadInputIsNamed(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"kafka-adr: x", `unknown setting "kafka-adr"`},
		{"default-partitions: many", "default-partitions"},
		{"auto-create-topics: maybe", "auto-create-topics"},
		{"shutdown-timeout: 5", "shutdown-timeout"},
		{"topic-defaults: 7", "mapping"},
		{"kafka-addr: [a, b]", "single value"},
		{"data-dir: [", "config file"},
	} {
		c := Default()
		err := ApplyYAML(&c, []byte(tc.yaml), "w.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want mention of %q", tc.yaml, err, tc.want)
		}
	}
	c := Default()
	c.KafkaAddr = "nohostport"
	c.LogLevel = "loud"
	c.DefaultPartitions = 0
	c.AdvertisedKafkaAddr = "0.0.0.0:9092"
	err := c.Validate()
	for _, want := range []string{"kafka-addr", "log-level", "default-partitions", "advertised-kafka-addr"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v does not mention %s", err, want)
		}
	}
	if err := ApplyEnv(&c, func(k string) (string, bool) { return "x", k == "WEIR_NODE_ID" }); err == nil || !strings.Contains(err.Error(), "WEIR_NODE_ID") {
		t.Errorf("env error %v", err)
	}
}

func TestApplyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "weir.yaml")
	os.WriteFile(p, []byte("node-id: 7\n"), 0o644)
	c := Default()
	if err := ApplyFile(&c, p); err != nil || c.NodeID != 7 {
		t.Fatalf("%v %d", err, c.NodeID)
	}
	if err := ApplyFile(&c, p+".missing"); err == nil {
		t.Fatal("missing file accepted")
	}
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	os.WriteFile(empty, nil, 0o644)
	if err := ApplyFile(&c, empty); err != nil {
		t.Fatalf("empty file: %v", err)
	}
}

func FuzzApplyYAML(f *testing.F) {
	f.Add([]byte("kafka-addr: 127.0.0.1:9092\ntopic-defaults:\n  retention.ms: 1\n"))
	f.Add([]byte("node-id: -1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Default()
		if err := ApplyYAML(&c, data, "fuzz"); err != nil {
			return
		}
		c.Validate() // must not panic on anything the file could set
	})
}

func TestClusterSettings(t *testing.T) {
	c := Default()
	if c.Clustered() {
		t.Fatal("the defaults are a cluster")
	}
	if err := ApplyYAML(&c, []byte("seeds: 127.0.0.1:9645, 127.0.0.1:9646\nnode-id: 2\nheal-after: 1m\nrpc-dial-map: {'a:1': 'b:2'}\n"), "w.yaml"); err != nil {
		t.Fatal(err)
	}
	if !c.Clustered() || len(c.Seeds) != 2 || c.Seeds[1] != "127.0.0.1:9646" || c.HealAfter != time.Minute || c.RPCDialMap["a:1"] != "b:2" {
		t.Fatalf("parsed %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.NodeID = 0
	c.Seeds = []string{"h:1", "h:2", "h:3", "h:4", "h:5", "h:6"}
	c.HealAfter = 0
	err := c.Validate()
	for _, want := range []string{"node-id must be 1 or more", "at most 5 voters", "heal-after"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v does not mention %q", err, want)
		}
	}
}
