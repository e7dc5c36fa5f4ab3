package server_test

// Interoperability with clients from other ecosystems: librdkafka (kcat) and
// kafkajs. `make interop` installs them (Debian kcat, npm kafkajs) and sets
// WEIR_INTEROP=1, which turns a missing tool into a failure instead of a skip.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/internal/server/servertest"
)

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("WEIR_INTEROP") != "" {
			t.Fatalf("%s is not installed (run make interop)", name)
		}
		t.Skipf("%s not installed; run make interop", name)
	}
	return p
}

func runTool(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, errb.String())
	}
	return out.String()
}

func TestInteropKcat(t *testing.T) {
	kcat := requireTool(t, "kcat")
	n := servertest.Start(t, nil)
	var lines strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&lines, "key%d:value-%d\n", i, i)
	}
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		topic := "kcat-" + codec
		runTool(t, lines.String(), kcat, "-P", "-b", n.Addr(), "-t", topic, "-z", codec, "-K:", "-H", "src=kcat",
			"-X", "enable.idempotence=true", "-X", "topic.acks=all")
		out := runTool(t, "", kcat, "-C", "-b", n.Addr(), "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%o %k=%s %h\n")
		got := strings.Split(strings.TrimSpace(out), "\n")
		if len(got) != 2000 {
			t.Fatalf("%s: read %d records", codec, len(got))
		}
		for i, l := range got {
			if want := fmt.Sprintf("%d key%d=value-%d src=kcat", i, i, i); l != want {
				t.Fatalf("%s: line %d = %q, want %q", codec, i, l, want)
			}
		}
		// Relative and timestamp offsets.
		if out := runTool(t, "", kcat, "-C", "-b", n.Addr(), "-t", topic, "-o", "-3", "-e", "-q", "-f", "%o\n"); out != "1997\n1998\n1999\n" {
			t.Fatalf("%s: last three offsets %q", codec, out)
		}
	}
	md := runTool(t, "", kcat, "-L", "-J", "-b", n.Addr())
	var meta struct {
		Brokers []struct{ ID int32 }     `json:"brokers"`
		Topics  []struct{ Topic string } `json:"topics"`
	}
	err := json.Unmarshal([]byte(md), &meta)
	userTopics := 0
	for _, t := range meta.Topics {
		if !strings.HasPrefix(t.Topic, "__") {
			userTopics++
		}
	}
	if err != nil || len(meta.Brokers) != 1 || userTopics != 5 {
		t.Fatalf("kcat -L: %v %+v", err, meta)
	}
}

func TestInteropKafkaJS(t *testing.T) {
	node := requireTool(t, "node")
	dir, err := filepath.Abs("../../test/interop")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs")); err != nil {
		if os.Getenv("WEIR_INTEROP") != "" {
			t.Fatal("kafkajs is not installed in test/interop (run make interop)")
		}
		t.Skip("kafkajs not installed; run make interop")
	}
	n := servertest.Start(t, nil)
	out := runTool(t, "", node, filepath.Join(dir, "kafkajs.js"), n.Addr(), "kjs")
	var res struct{ Partitions, Total int }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Partitions != 3 || res.Total != 1000 {
		t.Fatalf("kafkajs: %q (%v)", out, err)
	}
	// Read back what kafkajs wrote with another client.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := mustFranz(t, kgo.SeedBrokers(n.Addr()), kgo.ConsumeTopics("kjs"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	seen := map[string]bool{}
	for len(seen) < 1000 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			k := string(r.Key)
			if string(r.Value) != "v"+k[1:] || len(r.Headers) != 1 || string(r.Headers[0].Value) != k[1:] {
				t.Fatalf("record %s = %s %v", k, r.Value, r.Headers)
			}
			seen[k] = true
		})
	}
}
