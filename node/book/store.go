package book

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/overlay-net/overlay/cert"
	"github.com/overlay-net/overlay/internal/atomicfile"
)

// ErrCorrupt reports a book file that could not be read as a whole; Load has
// moved it aside and started empty.
var ErrCorrupt = errors.New("corrupt peer book")

// ErrSkipped reports entries of a book file that Load dropped as invalid
// while keeping the rest; callers log it as a warning and go on.
var ErrSkipped = errors.New("skipped invalid peer book entries")

// fileVersion lets a later build recognise, and convert, an older file.
const fileVersion = 1

// maxFile caps what Load reads, so a damaged file cannot exhaust memory. The
// default policy's 10000 peers with full address books fit several times.
const maxFile = 64 << 20

// file is the book's on-disk form.
type file struct {
	Version int       `json:"version"`
	Saved   time.Time `json:"saved"`
	Peers   any       `json:"peers"`
}

// fileIn decodes peers one by one, so that one bad entry costs only itself.
// Its keys are read strictly (an unknown one sets the file aside), as
// tunnels.json is read; entries are not, so that a peer written by another
// build costs at most itself.
type fileIn struct {
	Version int               `json:"version"`
	Saved   json.RawMessage   `json:"saved"`
	Peers   []json.RawMessage `json:"peers"`
}

// Load reads the book saved at path and applies p to it (see Evict). It
// always returns a usable book. A missing file gives an empty book. A file
// that cannot be read as a whole (too large, not JSON, an unknown key or
// version) is renamed to path.corrupt-<time> and an empty book is returned
// with an error wrapping ErrCorrupt. Invalid entries are dropped and reported with an error
// wrapping ErrSkipped alongside the rest of the book. Anything else, such as
// a path that is not a regular file, is an error the caller should not
// ignore: the file is left alone.
func Load(path string, p Policy) (*Book, error) {
	b := New(p)
	data, err := atomicfile.ReadCapped(path, maxFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return b, nil
	case errors.Is(err, atomicfile.ErrTooLarge):
		return b, setAside(path, err) // damaged, not unreadable
	case err != nil:
		return b, fmt.Errorf("read peer book %s: %w", path, err)
	}
	var f fileIn
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return b, setAside(path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return b, setAside(path, errors.New("more data after the JSON object"))
	}
	if f.Version != fileVersion {
		return b, setAside(path, fmt.Errorf("unknown version %d", f.Version))
	}
	skipped, firstWhy := 0, ""
	for i, raw := range f.Peers {
		var info PeerInfo
		why := ""
		if err := json.Unmarshal(raw, &info); err != nil {
			why = err.Error()
		} else if info.ID == "" {
			why = "no peer_id"
		} else if !info.State.Known() {
			why = fmt.Sprintf("unknown state %q", info.State)
		}
		if why != "" {
			if skipped == 0 {
				firstWhy = fmt.Sprintf("entry %d: %s", i, why)
			}
			skipped++
			continue
		}
		info.Path = PathNone // no connection survives a restart
		// A hand-edited or older file must not lift the per-peer cap.
		info.Direct = info.Direct[:min(len(info.Direct), MaxAddrs)]
		info.Relayed = info.Relayed[:min(len(info.Relayed), MaxAddrs)]
		if cert.ValidName(info.Name) != nil {
			info.Name = ""
		}
		info.Groups = slices.DeleteFunc(info.Groups[:min(len(info.Groups), cert.MaxGroups)],
			func(g string) bool { return cert.ValidName(g) != nil })
		b.peers[info.ID] = &entry{info: info.clone(), seenMark: info.LastSeen}
	}
	// A file written under a larger cap, or long ago, must not bring back
	// more than the policy allows.
	b.Evict(time.Now(), nil)
	// Remember what was read as this book would save it, so a Save with no
	// change since leaves the file alone.
	if sum, err := peersHash(b.List()); err == nil {
		b.saved[path] = sum
	}
	if skipped > 0 {
		return b, fmt.Errorf("%w: %d of %d in %s (first %s)", ErrSkipped, skipped, len(f.Peers), path, firstWhy)
	}
	return b, nil
}

// Save writes the book to path atomically, readable by the owner only, if its
// peers differ from what this Book last loaded from or saved to path. It
// reports whether it wrote the file.
func (b *Book) Save(path string) (written bool, err error) {
	b.saveMu.Lock()
	defer b.saveMu.Unlock()
	peers, err := json.Marshal(b.List())
	if err != nil {
		return false, fmt.Errorf("encode peer book: %w", err)
	}
	// The saved time is left out: it alone is no reason to write.
	sum := sha256.Sum256(peers)
	if last, ok := b.saved[path]; ok && last == sum {
		return false, nil
	}
	data, err := json.MarshalIndent(file{Version: fileVersion, Saved: time.Now().UTC(), Peers: json.RawMessage(peers)}, "", "  ")
	if err != nil {
		return false, fmt.Errorf("encode peer book: %w", err)
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return false, fmt.Errorf("write peer book %s: %w", path, err)
	}
	b.saved[path] = sum
	return true, nil
}

func peersHash(peers []PeerInfo) ([32]byte, error) {
	data, err := json.Marshal(peers)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(data), nil
}

// setAside moves a damaged book file out of the way and returns the error
// that reports it.
func setAside(path string, why error) error {
	// Nanoseconds keep two damaged files from one second apart.
	aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405.000000000"))
	if err := os.Rename(path, aside); err != nil {
		return fmt.Errorf("%w: %s: %v (and could not move it aside: %v)", ErrCorrupt, path, why, err)
	}
	return fmt.Errorf("%w: %s: %v; moved to %s", ErrCorrupt, path, why, aside)
}
