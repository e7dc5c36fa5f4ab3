package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/weir-dev/weir/internal/record"
)

// SyncDir makes a directory's entries (created, renamed or removed files)
// durable. Windows cannot open directories for syncing and needs no such step.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// WriteFileAtomic replaces dir/name with data so that after a crash the file
// holds either the old or the new content: write a temporary file, sync it,
// rename it over the old one and sync the directory.
func WriteFileAtomic(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, name+".*.tmp")
	if err != nil {
		return fmt.Errorf("create temp for %s: %w", name, err)
	}
	tmpName := tmp.Name()
	cleanup := func(err error) error {
		tmp.Close()
		os.Remove(tmpName)
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return cleanup(fmt.Errorf("write %s: %w", name, err))
	}
	if err := tmp.Sync(); err != nil {
		return cleanup(fmt.Errorf("sync %s: %w", name, err))
	}
	if err := tmp.Close(); err != nil {
		return cleanup(fmt.Errorf("close %s: %w", name, err))
	}
	if err := os.Rename(tmpName, filepath.Join(dir, name)); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("rename %s: %w", name, err)
	}
	return SyncDir(dir)
}

// ErrChecksum says a checksummed file failed its check.
var ErrChecksum = errors.New("checksum mismatch")

// Seal appends a CRC32C of data to data: the framing of every small
// metadata file Weir writes.
func Seal(data []byte) []byte {
	return binary.BigEndian.AppendUint32(data, record.Checksum(data))
}

// Unseal checks and strips the checksum Seal added.
func Unseal(data []byte) ([]byte, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("%w: file too short", ErrChecksum)
	}
	body := data[:len(data)-4]
	if binary.BigEndian.Uint32(data[len(data)-4:]) != record.Checksum(body) {
		return nil, ErrChecksum
	}
	return body, nil
}

// ReadSealed reads a file written with WriteFileAtomic(Seal(...)) and
// verifies it.
func ReadSealed(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	body, err := Unseal(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return body, nil
}
