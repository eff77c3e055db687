package compat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"ipcgo/frame"
	"ipcgo/internal/cserver"
	"ipcgo/internal/shortdir"
	"ipcgo/ipc"
)

const timeout = 10 * time.Second

// Sizes every matrix cell exchanges, in both directions.
var matrixSizes = []int{0, 1, 255, 256, 65535, 65536, 1 << 20}

// pattern is deterministic content for message seq of n bytes: the first 8
// bytes carry seq, so a reply to another request cannot pass the check.
func pattern(n int, seq uint64) []byte {
	b := make([]byte, n)
	var tag [8]byte
	binary.LittleEndian.PutUint64(tag[:], seq)
	copy(b, tag[:])
	for i := len(tag); i < n; i++ {
		b[i] = byte(uint64(i)*2654435761>>13) ^ byte(seq)
	}
	return b
}

// exchanger is one client, whatever its implementation.
type exchanger interface {
	roundTrip(msg []byte) ([]byte, error)
}

type cgoExchanger struct {
	c   *ipc.Client
	buf []byte
}

func (e *cgoExchanger) roundTrip(msg []byte) ([]byte, error) {
	if err := e.c.Send(msg, timeout); err != nil {
		return nil, err
	}
	n, err := e.c.Recv(e.buf, timeout)
	if err != nil {
		return nil, err
	}
	return e.buf[:n], nil
}

type goExchanger struct{ c *frame.Client }

func (e goExchanger) roundTrip(msg []byte) ([]byte, error) { return e.c.RoundTrip(msg, timeout) }

// newCgoSocket / newCgoShm / newGoClient connect a client, closed at cleanup.
func newCgoSocket(t *testing.T, path string) *cgoExchanger {
	t.Helper()
	c, err := ipc.NewSocketClient(path)
	if err != nil {
		t.Fatal(err)
	}
	return connectCgo(t, c)
}

func newCgoShm(t *testing.T, s *cserver.Server) *cgoExchanger {
	t.Helper()
	c, err := ipc.NewShmClient(s.Shm, s.Clients)
	if errors.Is(err, syscall.EINVAL) {
		t.Fatalf("ipc_client_create_shm(%q, %d) returned NULL: the shared-memory "+
			"transport is not in this build of the library (%v)", s.Shm, s.Clients, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return connectCgo(t, c)
}

func connectCgo(t *testing.T, c *ipc.Client) *cgoExchanger {
	t.Helper()
	t.Cleanup(func() { c.Close() })
	if err := c.Connect(); err != nil {
		t.Fatalf("connect: %v", err)
	}
	return &cgoExchanger{c: c, buf: make([]byte, 1<<20+1)}
}

func newGoClient(t *testing.T, path string) goExchanger {
	t.Helper()
	c, err := frame.Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return goExchanger{c}
}

// startGoServer starts the pure-Go echo server on a new socket.
func startGoServer(t *testing.T, maxMessage int) *frame.Server {
	t.Helper()
	s, err := frame.Listen(filepath.Join(shortdir.New(t), "go.sock"), maxMessage, frame.Echo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// exchangeSizes sends every matrix size up, then down again (so rings wrap
// and buffers shrink), checking every echo byte for byte.
func exchangeSizes(t *testing.T, ex exchanger) {
	t.Helper()
	var order []int
	order = append(order, matrixSizes...)
	for i := len(matrixSizes) - 1; i >= 0; i-- {
		order = append(order, matrixSizes[i])
	}
	for seq, n := range order {
		msg := pattern(n, uint64(seq))
		got, err := ex.roundTrip(msg)
		if err != nil {
			t.Fatalf("message %d (%d bytes): %v", seq, n, err)
		}
		if err := sameBytes(got, msg); err != nil {
			t.Fatalf("message %d (%d bytes): %v", seq, n, err)
		}
	}
}

// sameBytes describes the first difference between got and want.
func sameBytes(got, want []byte) error {
	if bytes.Equal(got, want) {
		return nil
	}
	if len(got) != len(want) {
		return fmt.Errorf("reply of %d bytes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("reply differs first at byte %d: %#x, want %#x", i, got[i], want[i])
		}
	}
	return nil
}
