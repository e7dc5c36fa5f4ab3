package storage

import (
	"math/bits"
	"sync"
	"unsafe"
)

// blockSize is the alignment direct I/O needs for buffer addresses, file
// positions and lengths. 4 KiB satisfies every common device.
const blockSize = 4096

func alignDown(n int64) int64 { return n &^ (blockSize - 1) }
func alignUp(n int64) int64   { return (n + blockSize - 1) &^ (blockSize - 1) }

// BufferPool hands out block-aligned buffers in power-of-two sizes, so that
// direct I/O has aligned memory and large buffers are reused instead of
// being allocated (and faulted in) again. One pool serves all logs of a
// broker.
type BufferPool struct {
	classes [maxClass + 1]sync.Pool
}

const (
	minClass = 12 // 4 KiB
	maxClass = 26 // 64 MiB; larger buffers are not pooled
)

// NewBufferPool returns an empty pool.
func NewBufferPool() *BufferPool { return &BufferPool{} }

// Get returns an aligned buffer with length n and capacity a power of two
// (at least a block).
func (p *BufferPool) Get(n int) []byte {
	class := max(bits.Len(uint(max(n, 1)-1)), minClass)
	if class <= maxClass {
		if b, ok := p.classes[class].Get().(*[]byte); ok {
			return (*b)[:n]
		}
	}
	return alignedAlloc(1 << class)[:n]
}

// Put returns a buffer from Get.
func (p *BufferPool) Put(b []byte) {
	c := cap(b)
	if c == 0 || c&(c-1) != 0 {
		return
	}
	class := bits.Len(uint(c - 1))
	if class < minClass || class > maxClass {
		return
	}
	b = b[:0]
	p.classes[class].Put(&b)
}

// alignedAlloc allocates n bytes (a multiple of blockSize) at a
// block-aligned address.
func alignedAlloc(n int) []byte {
	raw := make([]byte, n+blockSize)
	off := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & (blockSize - 1)); r != 0 {
		off = blockSize - r
	}
	return raw[off : off+n : off+n]
}
