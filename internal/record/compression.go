package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Decompressor expands compressed batch payloads. It keeps pools of codec
// state and output buffers and is safe for concurrent use; one is shared by
// everything in a broker.
type Decompressor struct {
	zstd    *zstd.Decoder
	gzip    sync.Pool // *gzip.Reader
	lz4     sync.Pool // *lz4.Reader
	buffers sync.Pool // *[]byte
}

// NewDecompressor returns a ready Decompressor.
func NewDecompressor() *Decompressor {
	// DecodeAll on one decoder is safe for concurrent use; the memory cap
	// guards against decompression bombs.
	zd, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		panic(fmt.Sprintf("zstd decoder with static options: %v", err))
	}
	return &Decompressor{zstd: zd}
}

// Close releases the decoders' goroutines.
func (d *Decompressor) Close() { d.zstd.Close() }

// xerialMagic starts snappy payloads framed the way the Java client writes
// them.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

var errTooLarge = errors.New("decompressed size over limit")

// Decompress expands src compressed with codec c into a pooled buffer that
// the caller must hand back with Release. Output larger than max is an error.
func (d *Decompressor) Decompress(c Compression, src []byte, max int) ([]byte, error) {
	bp, _ := d.buffers.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	out, err := d.DecompressInto(c, src, (*bp)[:0], max)
	if err != nil {
		d.buffers.Put(bp)
	}
	return out, err
}

// DecompressInto is Decompress appending to dst, a buffer the caller owns
// and keeps: nothing to release.
func (d *Decompressor) DecompressInto(c Compression, src, dst []byte, max int) ([]byte, error) {
	out, err := d.decompress(c, src, dst, max)
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		return nil, corruptf("%s payload: %v", c, err)
	}
	return out, nil
}

// Release returns a buffer from Decompress to the pool.
func (d *Decompressor) Release(buf []byte) {
	if cap(buf) > 64<<20 {
		return // do not pin huge buffers
	}
	buf = buf[:0]
	d.buffers.Put(&buf)
}

func (d *Decompressor) decompress(c Compression, src, dst []byte, max int) ([]byte, error) {
	switch c {
	case CompressionGzip:
		zr, _ := d.gzip.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(bytes.NewReader(src))
		} else {
			err = zr.Reset(bytes.NewReader(src))
		}
		if err != nil {
			return dst, err
		}
		defer d.gzip.Put(zr)
		return readAllLimited(zr, dst, max)
	case CompressionSnappy:
		if bytes.HasPrefix(src, xerialMagic) {
			return unframeXerial(src, dst, max)
		}
		return snappyBlock(src, dst, max)
	case CompressionLZ4:
		zr, _ := d.lz4.Get().(*lz4.Reader)
		if zr == nil {
			zr = lz4.NewReader(bytes.NewReader(src))
		} else {
			zr.Reset(bytes.NewReader(src))
		}
		defer d.lz4.Put(zr)
		return readAllLimited(zr, dst, max)
	case CompressionZstd:
		out, err := d.zstd.DecodeAll(src, dst)
		if err == nil && len(out) > max {
			return out, errTooLarge
		}
		return out, err
	}
	return dst, corruptf("unknown compression codec %d", c)
}

func snappyBlock(src, dst []byte, max int) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return dst, err
	}
	if n > max-len(dst) {
		return dst, errTooLarge
	}
	if cap(dst)-len(dst) < n {
		dst = append(make([]byte, 0, len(dst)+n), dst...)
	}
	out, err := s2.Decode(dst[len(dst):len(dst)+n], src)
	if err != nil {
		return dst, err
	}
	return dst[:len(dst)+len(out)], nil
}

// unframeXerial decodes the xerial snappy framing: an 8-byte magic, two
// 4-byte version fields, then chunks of a 4-byte length and a snappy block.
func unframeXerial(src, dst []byte, max int) ([]byte, error) {
	if len(src) < 16 {
		return dst, errors.New("short xerial header")
	}
	src = src[16:]
	for len(src) > 0 {
		if len(src) < 4 {
			return dst, errors.New("short xerial chunk length")
		}
		n := int(binary.BigEndian.Uint32(src))
		src = src[4:]
		if n < 0 || n > len(src) {
			return dst, errors.New("xerial chunk overruns payload")
		}
		var err error
		if dst, err = snappyBlock(src[:n], dst, max); err != nil {
			return dst, err
		}
		src = src[n:]
	}
	return dst, nil
}

func readAllLimited(r io.Reader, dst []byte, max int) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if len(dst) > max {
			return dst, errTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// Compress compresses src with codec c in the format Kafka clients read. It
// is for building batches in tests and tools, not for the produce path.
func Compress(c Compression, src []byte) ([]byte, error) {
	var buf bytes.Buffer
	switch c {
	case CompressionNone:
		return append([]byte(nil), src...), nil
	case CompressionGzip:
		w := gzip.NewWriter(&buf)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case CompressionSnappy:
		return s2.EncodeSnappy(nil, src), nil
	case CompressionLZ4:
		w := lz4.NewWriter(&buf)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case CompressionZstd:
		w, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer w.Close()
		return w.EncodeAll(src, nil), nil
	default:
		return nil, fmt.Errorf("compress: unknown codec %d", c)
	}
	return buf.Bytes(), nil
}
