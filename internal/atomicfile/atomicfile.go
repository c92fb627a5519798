// Package atomicfile owns the safe reading and writing of the node's small
// state files: writes that a crash cannot tear, and reads that a damaged or
// hostile file cannot turn into a memory blow-up or a hang.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrTooLarge reports a file over the cap given to ReadCapped.
var ErrTooLarge = errors.New("file too large")

// ErrNotRegular reports a path that is not a regular file (a FIFO, device,
// socket or directory), which ReadCapped refuses rather than block on or
// stream from.
var ErrNotRegular = errors.New("not a regular file")

// Write writes data to path so that a crash leaves either the old file or the
// new one, never a torn mix. The file gets mode perm before any data is in it.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	// Chmod before writing: CreateTemp's default mode could expose a secret
	// for as long as the write takes.
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename itself durable; some systems cannot sync a directory
		d.Close()
	}
	return nil
}

// ReadCapped reads the regular file at path, failing with an error wrapping
// ErrTooLarge if it holds more than max bytes and with one wrapping
// ErrNotRegular if it is not a regular file. A missing file gives an error
// matching fs.ErrNotExist.
func ReadCapped(path string, max int64) ([]byte, error) {
	// Stat before opening: opening a FIFO for reading blocks until a writer
	// shows up, which may be never.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := checkFile(path, fi, max); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Check again what was opened: the path may have been swapped since the
	// Stat above.
	ofi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkFile(path, ofi, max); err != nil {
		return nil, err
	}
	// The size can still grow while we read; the limit holds regardless.
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", path, ErrTooLarge, max)
	}
	return data, nil
}

func checkFile(path string, fi os.FileInfo, max int64) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %w (mode %v)", path, ErrNotRegular, fi.Mode().Type())
	}
	if fi.Size() > max {
		return fmt.Errorf("%s: %w: %d bytes, cap %d", path, ErrTooLarge, fi.Size(), max)
	}
	return nil
}
