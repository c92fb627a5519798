package atomicfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/overlay-net/overlay/internal/atomicfile"
)

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for _, content := range []string{"first", "second, longer than the first"} {
		if err := atomicfile.Write(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := atomicfile.ReadCapped(path, 1<<10)
		if err != nil || string(got) != content {
			t.Fatalf("ReadCapped = %q, %v; want %q", got, err, content)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after Write: %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v; want only the file, no temporaries", names)
	}
}

func TestWriteMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "f")
	if err := atomicfile.Write(path, []byte("x"), 0o600); err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
}

func TestReadCappedLimits(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := atomicfile.ReadCapped(path, 5); err != nil || string(got) != "12345" {
		t.Errorf("exactly at the cap: %q, %v", got, err)
	}
	if _, err := atomicfile.ReadCapped(path, 4); !errors.Is(err, atomicfile.ErrTooLarge) {
		t.Errorf("over the cap: %v, want ErrTooLarge", err)
	}
	if _, err := atomicfile.ReadCapped(filepath.Join(dir, "missing"), 5); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := atomicfile.ReadCapped(dir, 1<<20); !errors.Is(err, atomicfile.ErrNotRegular) {
		t.Errorf("directory: %v, want ErrNotRegular", err)
	}
}

// A sparse file far over the cap is refused without reading it.
func TestReadCappedSparse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Skipf("cannot make a sparse file here: %v", err)
	}
	f.Close()
	if _, err := atomicfile.ReadCapped(path, 1<<20); !errors.Is(err, atomicfile.ErrTooLarge) {
		t.Errorf("1 TiB sparse file: %v, want ErrTooLarge", err)
	}
}
