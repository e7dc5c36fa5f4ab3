//go:build !linux

package storage

import "os"

// openDirect reports that direct I/O is not used on this platform; logs
// read and write through the page cache.
func openDirect(string) (*os.File, error) { return nil, nil }
