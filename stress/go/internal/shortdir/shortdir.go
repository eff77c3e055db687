// Package shortdir gives tests directories short enough for socket paths:
// sun_path holds 108 bytes, and Bazel's TEST_TMPDIR alone can be longer.
package shortdir

import (
	"os"
	"path/filepath"
	"testing"
)

// New is a fresh directory under /tmp, removed at the end of the test.
func New(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "ipcgo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// SocketPath is a path for one socket in a New directory.
func SocketPath(t testing.TB) string {
	t.Helper()
	return filepath.Join(New(t), "s")
}
