package transport

import (
	"fmt"
	"sync"
	"testing"
)

// BenchmarkTCPHeartbeats measures envelopes per second between two
// transports over loopback, for heartbeat-sized messages (about 20 bytes
// encoded), sent in batches as a driver would after a Ready round across
// many groups. The sender keeps at most a window of envelopes in flight so
// that the queue never overflows and nothing is dropped.
func BenchmarkTCPHeartbeats(b *testing.B) {
	for _, batch := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			benchHeartbeats(b, batch)
		})
	}
}

func benchHeartbeats(b *testing.B, batch int) {
	const window = 1 << 15
	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		received int
	)
	recv := startNode(b, 2, withHandler(func(_ uint64, envs []Envelope) {
		mu.Lock()
		received += len(envs)
		mu.Unlock()
		cond.Signal()
	}))
	send := startNode(b, 1)
	send.SetPeer(2, recv.Addr().String())

	envs := make([]Envelope, batch)
	for i := range envs {
		envs[i] = Envelope{Group: uint64(i), Msg: heartbeat(1, 2, uint64(i))}
	}
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for sent < b.N {
		k := min(batch, b.N-sent)
		mu.Lock()
		for sent+k-received > window {
			cond.Wait()
		}
		mu.Unlock()
		send.Send(2, envs[:k])
		sent += k
	}
	mu.Lock()
	for received < b.N {
		cond.Wait()
	}
	mu.Unlock()
	b.StopTimer()
	s := send.Stats()
	if s.Dropped != 0 {
		b.Fatalf("dropped %d envelopes", s.Dropped)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "envelopes/s")
	b.ReportMetric(float64(s.EnvelopesSent)/float64(max(s.FramesSent, 1)), "envelopes/frame")
	b.ReportMetric(float64(s.BytesSent)/float64(max(s.EnvelopesSent, 1)), "bytes/envelope")
}

// BenchmarkFrameCodec measures encoding and decoding alone: one frame of
// 1024 heartbeats per iteration.
func BenchmarkFrameCodec(b *testing.B) {
	envs := make([]Envelope, 1024)
	for i := range envs {
		envs[i] = Envelope{Group: uint64(i), Msg: heartbeat(1, 2, uint64(i))}
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		f := newFrameBuf(nil)
		for b.Loop() {
			f = newFrameBuf(f.b)
			for _, e := range envs {
				_, size := envelopeLen(e.Group, e.Msg)
				if err := f.add(e.Group, e.Msg, size); err != nil {
					b.Fatal(err)
				}
			}
			f.seal()
		}
		b.ReportMetric(float64(b.N*len(envs))/b.Elapsed().Seconds(), "envelopes/s")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		payload := encodeFrame(b, envs)[frameHeaderLen:]
		for b.Loop() {
			if _, err := decodeFrame(payload); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(envs))/b.Elapsed().Seconds(), "envelopes/s")
	})
}
