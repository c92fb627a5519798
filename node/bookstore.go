package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// bookFile is the peer book's on-disk form. Version lets a later build read
// an older file.
type bookFile struct {
	Version int        `json:"version"`
	Saved   time.Time  `json:"saved"`
	Peers   []PeerInfo `json:"peers"`
}

const bookFileVersion = 1

// maxBookFile caps what Load reads, so a damaged file cannot exhaust memory.
const maxBookFile = 64 << 20

// Save writes the book to path atomically.
func (b *Book) Save(path string) error {
	f := bookFile{Version: bookFileVersion, Saved: time.Now().UTC(), Peers: b.List()}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode peer book: %w", err)
	}
	if err := WriteFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("write peer book %s: %w", path, err)
	}
	return nil
}

// ErrCorruptBook reports a peer book file that could not be read; LoadBook
// has moved it aside.
var ErrCorruptBook = errors.New("corrupt peer book")

// LoadBook reads the book saved at path. A missing file gives an empty book.
// A corrupt file is renamed to path.corrupt-<time> and an empty book is
// returned with an error wrapping ErrCorruptBook, so the caller can report it
// and go on.
func LoadBook(path string) (*Book, error) {
	b := NewBook()
	data, err := readCapped(path, maxBookFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return b, nil
	case errors.Is(err, errTooBig):
		return b, setAside(path, err) // damaged, not unreadable
	case err != nil:
		return b, fmt.Errorf("read peer book %s: %w", path, err)
	}
	var f bookFile
	if err := json.Unmarshal(data, &f); err != nil {
		return b, setAside(path, err)
	}
	if f.Version != bookFileVersion {
		return b, setAside(path, fmt.Errorf("unknown version %d", f.Version))
	}
	for i := range f.Peers {
		p := f.Peers[i]
		if p.ID == "" {
			continue
		}
		p.Path = PathNone // no connection survives a restart
		b.peers[p.ID] = &p
	}
	return b, nil
}

// setAside moves a damaged book file out of the way and returns the error
// that reports it.
func setAside(path string, why error) error {
	// Nanoseconds keep two damaged files from one second apart.
	aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405.000000000"))
	if err := os.Rename(path, aside); err != nil {
		return fmt.Errorf("%w: %s: %v (and could not move it aside: %v)", ErrCorruptBook, path, why, err)
	}
	return fmt.Errorf("%w: %s: %v; moved to %s", ErrCorruptBook, path, why, aside)
}

var errTooBig = errors.New("file too large")

func readCapped(path string, max int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%w: %d bytes, cap %d", errTooBig, fi.Size(), max)
	}
	return os.ReadFile(path)
}
