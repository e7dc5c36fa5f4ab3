package serve

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Flags beat the file, the file beats the environment, the environment
// beats the defaults.
func TestLoadPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "weir.yaml")
	os.WriteFile(file, []byte("kafka-addr: 127.0.0.1:2000\nhttp-addr: 127.0.0.1:2001\n"), 0o644)
	env := map[string]string{"WEIR_HTTP_ADDR": "127.0.0.1:3001", "WEIR_DATA_DIR": "/env/dir", "WEIR_KAFKA_ADDR": "127.0.0.1:3000"}
	cmd := New()
	if err := cmd.Flags().Parse([]string{"--kafka-addr", "127.0.0.1:1000"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(cmd.Flags(), file, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.KafkaAddr != "127.0.0.1:1000" || cfg.HTTPAddr != "127.0.0.1:2001" || cfg.DataDir != "/env/dir" || cfg.LogLevel != "info" {
		t.Fatalf("kafka %s http %s data %s level %s", cfg.KafkaAddr, cfg.HTTPAddr, cfg.DataDir, cfg.LogLevel)
	}
}

func TestLoadRejectsInvalid(t *testing.T) {
	cmd := New()
	cmd.Flags().Parse([]string{"--log-level", "chatty", "--sync-workers", "x"})
	_, err := Load(cmd.Flags(), "", func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "sync-workers") {
		t.Fatalf("error %v", err)
	}
	cmd = New()
	cmd.Flags().Parse([]string{"--log-level", "chatty"})
	_, err = Load(cmd.Flags(), "", func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "log-level") {
		t.Fatalf("error %v", err)
	}
}
