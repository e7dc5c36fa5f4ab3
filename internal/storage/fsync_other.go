//go:build !linux

package storage

import "os"

// datasync flushes f to stable storage; outside Linux that is a full fsync.
func datasync(f *os.File) error { return f.Sync() }
