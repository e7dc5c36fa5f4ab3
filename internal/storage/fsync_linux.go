//go:build linux

package storage

import (
	"os"
	"syscall"
)

// datasync flushes f's data (and the metadata needed to read it back) to
// stable storage. fdatasync skips the inode timestamps an fsync would write.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
