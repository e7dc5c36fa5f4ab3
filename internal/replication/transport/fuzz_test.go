package transport

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzDecodeFrames feeds arbitrary bytes to the inbound path: frames are
// read and decoded until the first error, as a connection would. It must
// never panic nor allocate beyond the frame limit, and whatever decodes must
// survive a round trip through the encoder. With sealed set, the input is
// wrapped as one frame with a correct CRC first, so mutations reach the
// envelope decoder instead of stopping at the checksum.
func FuzzDecodeFrames(f *testing.F) {
	envs := sampleEnvelopes()
	good := encodeFrame(f, envs)
	f.Add(good, false)
	f.Add(append(append([]byte(nil), good...), good...), false)
	f.Add(encodeFrame(f, nil), false)
	f.Add(good[:len(good)-3], false)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, false)
	f.Add(good[frameHeaderLen:], true)
	f.Add([]byte{0, 0, 0, 1, 1, 3, 0xff, 0xff, 0xff}, true)
	const maxSize = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte, sealed bool) {
		if sealed {
			hdr := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
			hdr = binary.BigEndian.AppendUint32(hdr, crc32.Checksum(data, castagnoli))
			data = append(hdr, data...)
		}
		r := bytes.NewReader(data)
		var buf []byte
		for {
			payload, err := readFrame(r, buf, maxSize)
			if err != nil {
				return
			}
			if len(payload) > maxSize {
				t.Fatalf("payload of %d bytes over the limit", len(payload))
			}
			buf = payload
			got, err := decodeFrame(payload)
			if err != nil {
				return
			}
			again, err := decodeFrame(encodeFrame(t, got)[frameHeaderLen:])
			if err != nil {
				t.Fatalf("re-encoded frame does not decode: %v", err)
			}
			if len(again) != len(got) {
				t.Fatalf("round trip: %d envelopes, want %d", len(again), len(got))
			}
			for i := range got {
				if again[i].Group != got[i].Group || !proto.Equal(again[i].Msg, got[i].Msg) {
					t.Fatalf("round trip changed envelope %d", i)
				}
			}
		}
	})
}

// FuzzReadHello feeds arbitrary bytes to the handshake reader.
func FuzzReadHello(f *testing.F) {
	f.Add(appendHello(nil, hello{version: protocolVersion, from: 1, to: 2, cluster: "c"}))
	f.Add(appendHello(nil, hello{version: 9, from: 1}))
	f.Add([]byte("WRFT\x00\x01\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := readHello(bytes.NewReader(data))
		if err != nil {
			return
		}
		again, err := readHello(bytes.NewReader(appendHello(nil, h)))
		if err != nil || again != h {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, h)
		}
	})
}
