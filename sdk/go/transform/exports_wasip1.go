//go:build wasip1

package transform

import "unsafe"

// The module's side of the host ABI (docs/format/transform-abi.md).

//go:wasmimport weir set_error
func hostSetError(ptr, n uint32)

//go:wasmimport weir log
func hostLog(level int32, ptr, n uint32)

var (
	inBuf []byte
	proc  processor
	snap  []byte
)

func ptrOf(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

func fail(err error) {
	msg := []byte(err.Error())
	hostSetError(ptrOf(msg), uint32(len(msg)))
}

// Log writes a line to the transform's log (`weir transform logs`).
func Log(msg string) {
	b := []byte(msg)
	hostLog(0, ptrOf(b), uint32(len(b)))
}

//go:wasmexport weir_abi_v1
func abiV1() {}

// The module takes a record table with each input frame.
//
//go:wasmexport weir_record_table
func recordTable() {}

//go:wasmexport weir_alloc
func alloc(size uint32) uint32 {
	if uint32(cap(inBuf)) < size || cap(inBuf) == 0 {
		inBuf = make([]byte, max(size, 64<<10))
	}
	inBuf = inBuf[:size]
	return ptrOf(inBuf[:cap(inBuf)])
}

//go:wasmexport weir_init
func initExport(n uint32) int32 {
	k, err := configure(inBuf[:n])
	if err != nil {
		fail(err)
		return -1
	}
	return int32(k)
}

//go:wasmexport weir_process
func processExport(n uint32) int64 {
	out, err := proc.process(inBuf[:n])
	if err != nil {
		fail(err)
		return -1
	}
	return int64(ptrOf(out))<<32 | int64(len(out))
}

//go:wasmexport weir_snapshot
func snapshotExport() int64 {
	snap = snapshot(snap[:0])
	return int64(ptrOf(snap))<<32 | int64(len(snap))
}

//go:wasmexport weir_restore
func restoreExport(n uint32) int32 {
	if err := restore(inBuf[:n]); err != nil {
		fail(err)
		return -1
	}
	return 0
}
