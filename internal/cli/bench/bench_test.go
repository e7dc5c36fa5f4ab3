package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name          string
		mode          string
		edit          func(*options)
		idempotentSet bool
		wantErr       string
		wantIdem      bool
	}{
		{name: "defaults", mode: "produce", edit: func(*options) {}, wantIdem: true},
		{name: "acks 1 turns idempotence off", mode: "produce", edit: func(o *options) { o.acks = "1" }},
		{name: "explicit idempotent with acks 0", mode: "e2e", edit: func(o *options) { o.acks = "0" }, idempotentSet: true, wantErr: "--idempotent needs --acks all"},
		{name: "tiny records", mode: "e2e", edit: func(o *options) { o.recordSize = 7 }, wantErr: "--record-size 7"},
		{name: "tiny records fine for consume", mode: "consume", edit: func(o *options) { o.recordSize = 0 }, wantIdem: true},
		{name: "bad acks", mode: "produce", edit: func(o *options) { o.acks = "2" }, wantErr: `--acks "2"`},
		{name: "bad compression", mode: "produce", edit: func(o *options) { o.compression = "brotli" }, wantErr: `--compression "brotli"`},
		{name: "bad format", mode: "consume", edit: func(o *options) { o.format = "yaml" }, wantErr: `unknown format "yaml"`},
		{name: "no consumers", mode: "e2e", edit: func(o *options) { o.consumers = 0 }, wantErr: "--consumers"},
		{name: "negative rate", mode: "produce", edit: func(o *options) { o.rate = -1 }, wantErr: "--rate"},
		{name: "zero duration", mode: "produce", edit: func(o *options) { o.duration = 0 }, wantErr: "--duration"},
		{name: "negative count", mode: "consume", edit: func(o *options) { o.count = -1 }, wantErr: "--count"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := defaultOptions()
			c.edit(&o)
			err := o.validate(c.mode, c.idempotentSet)
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if o.idempotent != c.wantIdem {
					t.Fatalf("idempotent = %v, want %v", o.idempotent, c.wantIdem)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, c.wantErr)
			}
		})
	}
}

func TestParseAcksAndCompression(t *testing.T) {
	for s, want := range map[string]kgo.Acks{"all": kgo.AllISRAcks(), "-1": kgo.AllISRAcks(), "1": kgo.LeaderAck(), "0": kgo.NoAck()} {
		if got, err := parseAcks(s); err != nil || got != want {
			t.Errorf("parseAcks(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		if _, err := parseCompression(s); err != nil {
			t.Errorf("parseCompression(%q): %v", s, err)
		}
	}
}

func TestSeeds(t *testing.T) {
	o := options{brokers: " a:1, b:2 ,,"}
	if got := strings.Join(o.seeds(), "|"); got != "a:1|b:2" {
		t.Fatalf("seeds = %q", got)
	}
}

func TestConsumeTarget(t *testing.T) {
	earliest := map[int32]int64{0: 10, 1: 0, 2: 5}
	latest := map[int32]int64{0: 110, 1: 50, 2: 5}
	if got := consumeTarget(0, earliest, latest); got != 150 {
		t.Errorf("everything present = %d, want 150", got)
	}
	if got := consumeTarget(7, earliest, latest); got != 7 {
		t.Errorf("--count 7 = %d", got)
	}
}

func TestAssign(t *testing.T) {
	from := map[int32]int64{0: 5, 1: 6, 2: 7}
	got := assign("t", 3, 2, from)
	if len(got) != 2 || len(got[0]["t"]) != 2 || len(got[1]["t"]) != 1 {
		t.Fatalf("3 partitions over 2 consumers: %v", got)
	}
	if _, ok := got[1]["t"][1]; !ok {
		t.Fatalf("partition 1 should go to consumer 1: %v", got)
	}
	if got := assign("t", 1, 4, from); len(got) != 1 {
		t.Fatalf("extra consumers should be left out, got %d", len(got))
	}
}

func TestWindow(t *testing.T) {
	s := time.Unix(10, 0)
	w := window{start: s, end: s.Add(time.Second)}
	if w.contains(s.Add(-1)) || !w.contains(s) || !w.contains(s.Add(time.Second-1)) || w.contains(s.Add(time.Second)) {
		t.Fatal("window should be [start, end)")
	}
}

func TestRecordPoolResets(t *testing.T) {
	rp := newRecordPool(16)
	r := rp.get()
	if len(r.Value) != 16 {
		t.Fatalf("value size %d", len(r.Value))
	}
	r.Partition, r.Offset, r.Topic = 3, 99, "x"
	rp.put(r)
	if r.Partition != 0 || r.Offset != 0 || r.Topic != "" || len(r.Value) != 16 {
		t.Fatalf("put should reset the record but keep its value: %+v", r)
	}
}
