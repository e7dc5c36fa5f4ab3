//go:build linux

package storage

import (
	"errors"
	"os"
	"syscall"
)

// openDirect opens path for direct I/O (O_DIRECT): reads and writes go
// between the device and our own buffers without the page cache. It returns
// nil, nil where the file system does not support it (tmpfs, for one), and
// the log falls back to buffered I/O.
func openDirect(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_DIRECT, 0)
	if errors.Is(err, syscall.EINVAL) {
		return nil, nil
	}
	return f, err
}
